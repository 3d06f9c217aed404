//! Errors as OpenAI returns them: an HTTP status and `{"error": {"message", "type", "param", "code"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::LlmError;

/// A request the server refuses or could not serve.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
    /// OpenAI's error type: `invalid_request_error`, `authentication_error`, `server_error`...
    pub kind: &'static str,
    /// The request parameter at fault.
    pub param: Option<String>,
    /// A machine-readable code: `model_not_found`, `context_length_exceeded`...
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400 for `param`.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code: None,
        }
    }

    /// 404: the request names a model this server does not serve.
    pub fn unknown_model(name: &str, served: &[&str]) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("The model `{name}` does not exist; this server serves {}", served.join(", ")),
            code: Some("model_not_found"),
            ..Self::invalid(Some("model"), "")
        }
    }

    /// 400: the prompt (with the tokens asked for) does not fit the context.
    pub fn context(tokens: usize, context: usize) -> Self {
        Self {
            code: Some("context_length_exceeded"),
            ..Self::invalid(
                Some("messages"),
                format!("This model's maximum context length is {context} tokens; the prompt has {tokens} tokens"),
            )
        }
    }

    /// 401: a missing or wrong API key.
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "Incorrect or missing API key: send `Authorization: Bearer <key>`".into(),
            kind: "authentication_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    /// 408: the request ran past the server's per-request timeout.
    pub fn timeout(seconds: u64) -> Self {
        Self {
            status: StatusCode::REQUEST_TIMEOUT,
            message: format!("The request did not finish within the server's {seconds} s timeout"),
            kind: "timeout_error",
            param: None,
            code: Some("timeout"),
        }
    }

    /// 500: the server failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: message.into(), kind: "server_error", param: None, code: None }
    }

    /// 503: the engine stopped.
    pub fn unavailable() -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, ..Self::internal("The generation engine is not running") }
    }

    /// The OpenAI error body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl From<LlmError> for ApiError {
    /// Errors of the request's own making are 400 naming their parameter; the rest are 500.
    fn from(e: LlmError) -> Self {
        match &e {
            LlmError::Constraint { .. } => Self::invalid(Some("response_format"), e.to_string()),
            LlmError::ContextOverflow { tokens, context } => Self::context(*tokens, *context),
            LlmError::Config { field, .. } => Self::invalid(Some(field), e.to_string()),
            LlmError::Template { .. } => Self::invalid(Some("messages"), e.to_string()),
            _ => Self::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}
