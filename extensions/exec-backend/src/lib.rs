//! Skeleton of the `exec-backend` extension (being built for issue 6).

use async_trait::async_trait;
use dispatch_kernel::abi::{Extension, Manifest};
use dispatch_kernel::host::HostApi;
use dispatch_kernel::{BoxError, Error};

#[derive(Debug, Default)]
pub struct Skeleton;

#[async_trait]
impl Extension for Skeleton {
    fn manifest(&self) -> Result<Manifest, Error> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, _host: &mut HostApi) -> Result<(), BoxError> {
        Ok(())
    }
}
