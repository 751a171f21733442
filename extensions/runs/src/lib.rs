//! Skeleton of the `runs` extension (being built for issue 7).

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, Manifest};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};

#[derive(Debug, Default)]
pub struct RunsExtension;

#[async_trait]
impl Extension for RunsExtension {
    fn manifest(&self) -> Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, _host: &mut HostApi) -> Result<(), BoxError> {
        Ok(())
    }
}
