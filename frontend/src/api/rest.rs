//! rest-api: `GET /`.

use poem_openapi::{Object, OpenApi, Tags};

use super::encoded::EncodedJson;
use super::responses::Hardened;

#[derive(Tags)]
enum ApiTags {
    /// Service status.
    Status,
}

/// `{"result": "OK"}`.
#[derive(Debug, Object)]
pub struct StatusBody {
    /// Always `OK` when the service answers.
    pub result: String,
}

pub struct RestApi;

#[OpenApi(tag = "ApiTags::Status")]
impl RestApi {
    /// Service status
    ///
    /// Answers `{"result": "OK"}`.
    #[oai(path = "/", method = "get", operation_id = "status")]
    async fn status(&self) -> Hardened<EncodedJson<StatusBody>> {
        Hardened(status())
    }
}

/// `{"result":"OK"}`, for the operation and for the hot path ([`crate::hot_routes`]).
pub fn status() -> EncodedJson<StatusBody> {
    EncodedJson::new(bytes::Bytes::from_static(br#"{"result":"OK"}"#))
}
