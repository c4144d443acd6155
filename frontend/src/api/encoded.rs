//! JSON bodies encoded once per state update and served as bytes. The spec still describes the
//! typed object, so clients and Swagger UI see the same schema as with `Json<T>`.

use std::marker::PhantomData;

use bytes::Bytes;
use poem::{IntoResponse, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::Type;

const JSON: &str = "application/json; charset=utf-8";

/// A JSON body of type `T`, already encoded.
pub struct EncodedJson<T> {
    body: Bytes,
    schema: PhantomData<fn() -> T>,
}

impl<T> EncodedJson<T> {
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self { body: body.into(), schema: PhantomData }
    }
}

impl<T: Type> Payload for EncodedJson<T> {
    const CONTENT_TYPE: &'static str = JSON;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T> IntoResponse for EncodedJson<T> {
    fn into_response(self) -> Response {
        Response::builder().content_type(JSON).body(self.body)
    }
}

/// A bare `EncodedJson<T>` return type is a 200 with that body.
impl<T: Type> ApiResponse for EncodedJson<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType { content_type: Self::CONTENT_TYPE, schema: Self::schema_ref() }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// An object encoded up to its last field, `"<name>":`, whose value changes with every request
/// (an age): the body is the prefix, the value, and `}`.
#[derive(Debug, Clone)]
pub struct OpenObject {
    prefix: Bytes,
}

impl OpenObject {
    /// Encodes `value` (a struct that skips the last field when serialized) and opens the last
    /// field `name`.
    pub fn encode<S: serde::Serialize>(value: &S, name: &str) -> Result<Self, serde_json::Error> {
        let mut prefix = serde_json::to_vec(value)?;
        if prefix.last() != Some(&b'}') {
            return Err(serde::ser::Error::custom("not a JSON object"));
        }
        prefix.pop();
        if prefix.len() > 1 {
            prefix.push(b',');
        }
        serde_json::to_writer(&mut prefix, name)?;
        prefix.push(b':');
        Ok(Self { prefix: prefix.into() })
    }

    /// The whole object with `last` as the value of the last field.
    pub fn close_with(&self, last: f64) -> Bytes {
        let mut body = Vec::with_capacity(self.prefix.len() + 24);
        body.extend_from_slice(&self.prefix);
        // Writing an f64 to a Vec cannot fail (a non-finite one becomes null).
        let _ = serde_json::to_writer(&mut body, &last);
        body.push(b'}');
        body.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Sample {
        name: &'static str,
        #[serde(skip)]
        #[allow(dead_code)]
        age: f64,
    }

    #[derive(serde::Serialize)]
    struct Empty {}

    #[test]
    fn closing_an_open_object_gives_valid_json_with_the_last_field() {
        let open = OpenObject::encode(&Sample { name: "a\"b", age: 0.0 }, "age").expect("encode");
        let body: serde_json::Value = serde_json::from_slice(&open.close_with(1.25)).expect("valid JSON");
        assert_eq!(body, serde_json::json!({"name": "a\"b", "age": 1.25}));
        let empty = OpenObject::encode(&Empty {}, "age").expect("encode");
        assert_eq!(&empty.close_with(0.5)[..], br#"{"age":0.5}"#);
    }

    #[test]
    fn a_value_that_is_not_an_object_is_refused() {
        assert!(OpenObject::encode(&[1, 2], "age").is_err());
    }
}
