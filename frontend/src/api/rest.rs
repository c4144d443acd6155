//! rest-api: `GET /`.

use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

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
    async fn status(&self) -> Json<StatusBody> {
        Json(StatusBody { result: "OK".to_string() })
    }
}
