//! The pieces an operation of the document is made of: schemas registered as components, JSON
//! bodies, path and query parameters, and the error answers every route shares.

use std::collections::BTreeMap;

use utoipa::ToSchema;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Content, Paths, Ref, RefOr, Required, ResponseBuilder};

use crate::error::ErrorBody;

/// A query parameter: its name, what it holds, and what it does.
#[derive(Clone, Copy)]
pub struct QueryParam {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

#[derive(Clone, Copy)]
pub enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    /// Repeated (`status=a&status=b`) or comma-separated.
    StringList,
}

/// The document under construction: operations by path, and the schemas they name.
#[derive(Default)]
pub struct Builder {
    pub paths: Paths,
    pub schemas: BTreeMap<String, RefOr<Schema>>,
}

impl Builder {
    /// A `$ref` to `T`, registering `T` and everything it names.
    pub fn schema<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let mut named = vec![(T::name().into_owned(), T::schema())];
        T::schemas(&mut named);
        for (name, schema) in named {
            self.schemas.entry(name).or_insert(schema);
        }
        Ref::from_schema_name(T::name()).into()
    }

    /// The pagination envelope of a list of `T` (`Page<T>` in nucleus-api).
    pub fn page<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let item = self.schema::<T>();
        let count = || ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0));
        let link = || ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]));
        ObjectBuilder::new()
            .property("count", count())
            .property("totalCount", count())
            .property("next", link())
            .property("previous", link())
            .property("data", ArrayBuilder::new().items(item))
            .required("count")
            .required("totalCount")
            .required("next")
            .required("previous")
            .required("data")
            .into()
    }

    /// Adds `operation` under `path` for `method`, with a required string parameter for every
    /// `{name}` in the path and the error answers in `errors`.
    pub fn add(&mut self, method: HttpMethod, path: &str, operation: OperationBuilder, errors: &[u16]) {
        let mut operation = operation;
        for name in path_parameters(path) {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        let error = self.schema::<ErrorBody>();
        let mut codes = errors.to_vec();
        codes.extend([401, 503]);
        codes.sort_unstable();
        codes.dedup();
        for code in codes {
            operation = operation.response(
                code.to_string(),
                ResponseBuilder::new().description(reason(code)).content("application/json", Content::new(Some(error.clone()))),
            );
        }
        let operation: Operation = operation.build();
        self.paths.add_path_operation(path, vec![method], operation);
    }
}

/// An operation with its id, tag and one-line summary.
pub fn operation(id: &str, tag: &str, summary: &str) -> OperationBuilder {
    OperationBuilder::new().operation_id(Some(id)).tag(tag).summary(Some(summary))
}

/// A required JSON request body.
pub fn json_body(schema: RefOr<Schema>) -> Option<utoipa::openapi::request_body::RequestBody> {
    Some(RequestBodyBuilder::new().required(Some(Required::True)).content("application/json", Content::new(Some(schema))).build())
}

/// A JSON request body that may be left out.
pub fn optional_json_body(schema: RefOr<Schema>) -> Option<utoipa::openapi::request_body::RequestBody> {
    Some(RequestBodyBuilder::new().required(Some(Required::False)).content("application/json", Content::new(Some(schema))).build())
}

/// A success answer with a JSON body.
pub fn ok(operation: OperationBuilder, code: u16, description: &str, schema: RefOr<Schema>) -> OperationBuilder {
    operation
        .response(code.to_string(), ResponseBuilder::new().description(description).content("application/json", Content::new(Some(schema))))
}

/// A success answer without a body.
pub fn empty(operation: OperationBuilder, code: u16, description: &str) -> OperationBuilder {
    operation.response(code.to_string(), ResponseBuilder::new().description(description))
}

pub fn with_query(mut operation: OperationBuilder, params: &[QueryParam]) -> OperationBuilder {
    for param in params {
        let schema: RefOr<Schema> = match param.kind {
            Kind::String => ObjectBuilder::new().schema_type(Type::String).into(),
            Kind::Integer => ObjectBuilder::new().schema_type(Type::Integer).into(),
            Kind::Number => ObjectBuilder::new().schema_type(Type::Number).into(),
            Kind::Boolean => ObjectBuilder::new().schema_type(Type::Boolean).into(),
            Kind::StringList => ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::String)).into(),
        };
        operation = operation.parameter(
            ParameterBuilder::new()
                .name(param.name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(param.description))
                .schema(Some(schema)),
        );
    }
    operation
}

fn path_parameters(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
}

fn reason(code: u16) -> &'static str {
    match code {
        400 => "Malformed request (e.g. a body that is not JSON)",
        401 => "No or unknown API token",
        403 => "The caller's role does not allow this",
        404 => "No such object, or the caller cannot see it",
        409 => "Conflicts with the object's current state",
        422 => "A field or parameter is invalid; `detail` names it",
        502 => "The workload's replica could not be reached",
        503 => "Temporarily unavailable (metadata service or no ready replica); retry",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::path_parameters;

    #[test]
    fn path_parameters_are_the_braced_segments() {
        let names: Vec<&str> = path_parameters("/api/v2/workloads/{workload_id}/protons/{proton_id}").collect();
        assert_eq!(names, ["workload_id", "proton_id"]);
    }
}
