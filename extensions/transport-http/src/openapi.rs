//! The OpenAPI 3.1 document, derived from the handlers themselves.
//!
//! Every route is added through [`Api`], which registers the handler with axum *and*
//! documents it from the handler's type: each argument type ([`DocInput`]: [`Body`],
//! [`Query`], [`ConversationId`], ...) and the return type ([`DocOutput`]: `Json<T>`,
//! `Result<_, ApiError>`, the NDJSON chat stream) contributes its parameters, request body,
//! responses and error statuses. So a route cannot be served without being documented, and
//! a body type cannot change without the document following.
//!
//! The wire types derive `schemars::JsonSchema`, not utoipa's `ToSchema` (which the orphan
//! rule keeps us from implementing for them), so paths and operations are built with
//! utoipa's OpenAPI model while the component schemas are schemars' JSON Schema (draft
//! 2020-12, which OpenAPI 3.1 uses) with references under `#/components/schemas/`, attached
//! verbatim rather than converted lossily into utoipa's schema model.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::handler::Handler;
use axum::routing::{MethodFilter, on};
use dispatch_transport_kit::ApiError;
use dispatch_wire::ErrorResponse;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value};
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    InfoBuilder, OpenApiBuilder, Paths, Ref, RefOr, Required, Response, header::Header,
};

use crate::extract::{Body, ConversationId, IDEMPOTENCY_KEY, IdempotencyKey, Query, WorkspaceId};

/// Where component schemas live in the document.
const COMPONENTS: &str = "/components/schemas";

/// What one operation is, besides what its types say.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    /// The `operationId`, camelCase.
    pub id: &'static str,
    pub summary: &'static str,
    pub tag: &'static str,
    /// Error statuses the handler itself can answer beyond those its types imply (404, 409,
    /// 504...).
    pub errors: &'static [u16],
}

/// One operation being documented.
#[derive(Default)]
pub struct OperationDoc {
    parameters: Vec<Parameter>,
    request_body: Option<utoipa::openapi::request_body::RequestBody>,
    success: Vec<(String, Response)>,
    errors: BTreeSet<u16>,
}

impl OperationDoc {
    pub fn parameter(&mut self, parameter: Parameter) {
        self.parameters.push(parameter);
    }

    pub fn error(&mut self, status: u16) {
        self.errors.insert(status);
    }

    pub fn success(&mut self, status: &str, response: Response) {
        self.success.push((status.to_owned(), response));
    }
}

/// The schema generator shared by every operation of the document.
pub struct Schemas {
    generator: SchemaGenerator,
}

impl Default for Schemas {
    fn default() -> Schemas {
        let generator = SchemaSettings::draft2020_12()
            .for_serialize()
            .with(|settings| {
                settings.definitions_path = COMPONENTS.into();
                settings.meta_schema = None;
            })
            .into_generator();
        Schemas { generator }
    }
}

impl Schemas {
    /// A reference to `T`'s component schema (or `T`'s schema inline when schemars inlines
    /// it).
    pub fn reference<T: JsonSchema>(&mut self) -> RefOr<Schema> {
        let schema = self.generator.subschema_for::<T>();
        match schema.get("$ref").and_then(Value::as_str) {
            Some(location) => RefOr::Ref(Ref::new(location)),
            None => to_utoipa(schema.to_value()),
        }
    }

    /// The properties of `T` (an object) as query parameters.
    pub fn query_parameters<T: JsonSchema>(&self) -> Vec<Parameter> {
        let root = SchemaSettings::draft2020_12()
            .for_deserialize()
            .with(|settings| settings.inline_subschemas = true)
            .into_generator()
            .into_root_schema_for::<T>()
            .to_value();
        let required: BTreeSet<&str> = root
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(properties) = root.get("properties").and_then(Value::as_object) else {
            return Vec::new();
        };
        properties
            .iter()
            .map(|(name, schema)| {
                let mut schema = schema.clone();
                let description = take_string(&mut schema, "description");
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Query)
                    .required(if required.contains(name.as_str()) {
                        Required::True
                    } else {
                        Required::False
                    })
                    .description(description)
                    .schema(Some(to_utoipa(not_null(schema))))
                    .build()
            })
            .collect()
    }

    fn take(&mut self) -> Map<String, Value> {
        self.generator.take_definitions(true)
    }
}

fn take_string(schema: &mut Value, key: &str) -> Option<String> {
    match schema.as_object_mut()?.remove(key)? {
        Value::String(text) => Some(text),
        _ => None,
    }
}

/// `{"type": ["integer", "null"]}` → `{"type": "integer"}`: an absent query parameter is
/// how "null" is said.
fn not_null(mut schema: Value) -> Value {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            if let Some(object) = schema.as_object_mut() {
                object.insert("type".to_owned(), only);
            }
        }
    }
    schema
}

/// A plain JSON Schema as utoipa's model (used for parameter schemas, which are simple).
fn to_utoipa(schema: Value) -> RefOr<Schema> {
    serde_json::from_value(schema).unwrap_or_else(|err| {
        tracing::warn!(error = %err, "Schema not representable in the OpenAPI model; left open");
        RefOr::T(Schema::Object(ObjectBuilder::new().build()))
    })
}

fn string_schema(pattern: &str, description: &str) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .description(Some(description))
            .build(),
    ))
}

/// A handler argument that shows in the document.
pub trait DocInput {
    fn document(doc: &mut OperationDoc, schemas: &mut Schemas);
}

/// A handler result that shows in the document.
pub trait DocOutput {
    fn document(doc: &mut OperationDoc, schemas: &mut Schemas);
}

/// A handler function whose arguments and result document themselves.
pub trait DocHandler<Args> {
    fn document(doc: &mut OperationDoc, schemas: &mut Schemas);
}

macro_rules! doc_handler {
    ($($arg:ident),*) => {
        impl<F, Fut, R, $($arg,)*> DocHandler<($($arg,)*)> for F
        where
            F: FnOnce($($arg),*) -> Fut,
            Fut: Future<Output = R>,
            R: DocOutput,
            $($arg: DocInput,)*
        {
            fn document(doc: &mut OperationDoc, schemas: &mut Schemas) {
                $(<$arg as DocInput>::document(doc, schemas);)*
                R::document(doc, schemas);
            }
        }
    };
}

doc_handler!();
doc_handler!(A1);
doc_handler!(A1, A2);
doc_handler!(A1, A2, A3);
doc_handler!(A1, A2, A3, A4);
doc_handler!(A1, A2, A3, A4, A5);

impl<S> DocInput for State<S> {
    fn document(_doc: &mut OperationDoc, _schemas: &mut Schemas) {}
}

impl<T: JsonSchema> DocInput for Body<T> {
    fn document(doc: &mut OperationDoc, schemas: &mut Schemas) {
        let content = ContentBuilder::new()
            .schema(Some(schemas.reference::<T>()))
            .build();
        doc.request_body = Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", content)
                .build(),
        );
        doc.error(400);
        doc.error(413);
        doc.error(415);
    }
}

impl<T: JsonSchema> DocInput for Query<T> {
    fn document(doc: &mut OperationDoc, schemas: &mut Schemas) {
        for parameter in schemas.query_parameters::<T>() {
            doc.parameter(parameter);
        }
        doc.error(400);
    }
}

impl DocInput for ConversationId {
    fn document(doc: &mut OperationDoc, _schemas: &mut Schemas) {
        doc.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string_schema(
                    "^[A-Za-z0-9_.:-]{1,128}$",
                    "A conversation id",
                )))
                .build(),
        );
        doc.error(400);
    }
}

impl DocInput for WorkspaceId {
    fn document(doc: &mut OperationDoc, _schemas: &mut Schemas) {
        doc.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string_schema(
                    "^[a-z0-9][a-z0-9-]{0,63}$",
                    "A workspace slug",
                )))
                .build(),
        );
        doc.error(400);
    }
}

impl DocInput for IdempotencyKey {
    fn document(doc: &mut OperationDoc, _schemas: &mut Schemas) {
        doc.parameter(
            ParameterBuilder::new()
                .name(IDEMPOTENCY_KEY)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Client idempotency key (wins over the body's `requestId`): repeating the \
                     key of the conversation's running or latest turn re-attaches to it.",
                ))
                .schema(Some(string_schema("^[!-~]{1,128}$", "Visible ASCII")))
                .build(),
        );
        doc.error(400);
    }
}

impl<T: JsonSchema> DocOutput for Json<T> {
    fn document(doc: &mut OperationDoc, schemas: &mut Schemas) {
        let content = ContentBuilder::new()
            .schema(Some(schemas.reference::<T>()))
            .build();
        doc.success(
            "200",
            ResponseBuilder::new()
                .description("OK")
                .content("application/json", content)
                .build(),
        );
    }
}

impl<R: DocOutput> DocOutput for Result<R, ApiError> {
    fn document(doc: &mut OperationDoc, schemas: &mut Schemas) {
        R::document(doc, schemas);
        // Every route is behind the token check and reaches services looked up per request.
        doc.error(401);
        doc.error(500);
        doc.error(503);
    }
}

/// What each error status means on this API.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => {
            "Invalid input; `field` names the body field, query parameter, path segment or header at fault"
        }
        401 => "Missing or wrong bearer token",
        404 => "No such conversation or workspace",
        409 => {
            "Conflicts with the current state (a turn is already active, the default workspace...)"
        }
        413 => "The request body is larger than the configured limit",
        415 => "The body is not `application/json`",
        500 => "An internal failure (logged)",
        503 => "A service the route needs is not running (or the server is shutting down)",
        504 => "The wait timed out",
        _ => "Error",
    }
}

/// A header of a response, documented as a string.
pub fn header(description: &str) -> Header {
    let mut header = Header::new(RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(Type::String).build(),
    )));
    header.description = Some(description.to_owned());
    header
}

/// Routes with their documentation, built together.
pub struct Api<S> {
    router: Router<S>,
    paths: Paths,
    schemas: Schemas,
    routes: Vec<(HttpMethod, &'static str, &'static str)>,
}

impl<S: Clone + Send + Sync + 'static> Default for Api<S> {
    fn default() -> Api<S> {
        Api {
            router: Router::new(),
            paths: Paths::new(),
            schemas: Schemas::default(),
            routes: Vec::new(),
        }
    }
}

/// The result of [`Api::finish`].
pub struct Built<S> {
    pub router: Router<S>,
    /// The OpenAPI document.
    pub document: Value,
    /// `(method, path, operationId)` of every route, in registration order.
    pub routes: Vec<(HttpMethod, &'static str, &'static str)>,
}

impl<S: Clone + Send + Sync + 'static> Api<S> {
    pub fn get<H, T, D>(self, path: &'static str, op: Op, handler: H) -> Api<S>
    where
        H: Handler<T, S> + DocHandler<D>,
        T: 'static,
    {
        self.add(HttpMethod::Get, MethodFilter::GET, path, op, handler)
    }

    pub fn post<H, T, D>(self, path: &'static str, op: Op, handler: H) -> Api<S>
    where
        H: Handler<T, S> + DocHandler<D>,
        T: 'static,
    {
        self.add(HttpMethod::Post, MethodFilter::POST, path, op, handler)
    }

    pub fn put<H, T, D>(self, path: &'static str, op: Op, handler: H) -> Api<S>
    where
        H: Handler<T, S> + DocHandler<D>,
        T: 'static,
    {
        self.add(HttpMethod::Put, MethodFilter::PUT, path, op, handler)
    }

    pub fn delete<H, T, D>(self, path: &'static str, op: Op, handler: H) -> Api<S>
    where
        H: Handler<T, S> + DocHandler<D>,
        T: 'static,
    {
        self.add(HttpMethod::Delete, MethodFilter::DELETE, path, op, handler)
    }

    fn add<H, T, D>(
        mut self,
        method: HttpMethod,
        filter: MethodFilter,
        path: &'static str,
        op: Op,
        handler: H,
    ) -> Api<S>
    where
        H: Handler<T, S> + DocHandler<D>,
        T: 'static,
    {
        let mut doc = OperationDoc::default();
        <H as DocHandler<D>>::document(&mut doc, &mut self.schemas);
        doc.errors.extend(op.errors);
        let error_schema = self.schemas.reference::<ErrorResponse>();
        let mut responses = ResponsesBuilder::new();
        for (status, response) in doc.success {
            responses = responses.response(status, response);
        }
        for status in &doc.errors {
            let content = ContentBuilder::new()
                .schema(Some(error_schema.clone()))
                .build();
            responses = responses.response(
                status.to_string(),
                ResponseBuilder::new()
                    .description(error_description(*status))
                    .content("application/json", content)
                    .build(),
            );
        }
        let operation = OperationBuilder::new()
            .operation_id(Some(op.id))
            .summary(Some(op.summary))
            .tag(op.tag)
            .parameters(Some(doc.parameters))
            .request_body(doc.request_body)
            .responses(responses.build())
            .build();
        self.paths
            .add_path_operation(path, vec![method.clone()], operation);
        self.router = self.router.route(path, on(filter, handler));
        self.routes.push((method, path, op.id));
        self
    }

    /// The router and the document describing exactly its routes.
    pub fn finish(mut self) -> Built<S> {
        let components = ComponentsBuilder::new()
            .security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "`Authorization: Bearer <DISPATCH_TOKEN>`; required on every \
                             route when the server has a token",
                        ))
                        .build(),
                ),
            )
            .security_scheme(
                "tokenQuery",
                SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                    "token",
                    "The token as a query parameter, for clients that cannot set headers \
                     (WebSocket in a browser)",
                ))),
            )
            .build();
        let openapi = OpenApiBuilder::new()
            .info(
                InfoBuilder::new()
                    .title("Dispatch HTTP API")
                    .version(env!("CARGO_PKG_VERSION"))
                    .description(Some(format!(
                        "The HTTP API of dispatch-server (wire contract {}). Every error body \
                         is an ErrorResponse.",
                        dispatch_wire::WIRE_VERSION
                    )))
                    .build(),
            )
            .paths(self.paths)
            .components(Some(components))
            .security(Some([
                SecurityRequirement::new("bearer", Vec::<String>::new()),
                SecurityRequirement::new("tokenQuery", Vec::<String>::new()),
            ]))
            .build();
        let mut document = serde_json::to_value(&openapi).unwrap_or_else(|err| {
            tracing::error!(error = %err, "Cannot serialize the OpenAPI document");
            Value::Object(Map::new())
        });
        let definitions: BTreeMap<String, Value> = self.schemas.take().into_iter().collect();
        if let Some(components) = document
            .get_mut("components")
            .and_then(Value::as_object_mut)
        {
            components.insert(
                "schemas".to_owned(),
                Value::Object(definitions.into_iter().collect()),
            );
        }
        Built {
            router: self.router,
            document,
            routes: self.routes,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(JsonSchema)]
    #[schemars(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Params {
        /// How many.
        #[schemars(range(min = 1))]
        limit: Option<u64>,
        since_seq: Option<u64>,
    }

    #[test]
    fn query_parameters_come_from_the_struct() {
        let parameters = Schemas::default().query_parameters::<Params>();
        let value = serde_json::to_value(&parameters).unwrap();
        assert_eq!(
            value,
            serde_json::json!([
                {
                    "name": "limit",
                    "in": "query",
                    "required": false,
                    "description": "How many.",
                    "schema": {"type": "integer", "format": "uint64", "minimum": 1}
                },
                {
                    "name": "sinceSeq",
                    "in": "query",
                    "required": false,
                    "schema": {"type": "integer", "format": "uint64", "minimum": 0}
                }
            ])
        );
    }
}
