//! RDS IAM database authentication tokens.
//!
//! A token is a SigV4-presigned request `GET https://<host>:<port>/?Action=connect&DBUser=<user>`
//! for the service `rds-db`, valid for 15 minutes, written without its scheme. The database
//! checks the signature with IAM: the function's role needs `rds-db:connect` on
//! `arn:aws:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<user>`. The client sends it as
//! the password with MySQL's cleartext plugin, which is why it only ever travels over TLS.
//!
//! Made here with `aws-sigv4`, which the SDK already builds, rather than with the whole RDS SDK
//! for one function: signing is local, with no network call.

use crate::error::DbError;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use std::time::{Duration, SystemTime};

/// How long a token is valid; RDS accepts at most 15 minutes. A connection only needs it for
/// the handshake, so every connect signs a fresh one.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// The authentication token for `user` at `host:port`, signed at `time`.
pub fn auth_token(
    host: &str,
    port: u16,
    user: &str,
    region: &str,
    credentials: &Credentials,
    time: SystemTime,
) -> Result<String, DbError> {
    let failed =
        |reason: &str, source: Box<dyn std::error::Error + Send + Sync>| DbError::IamToken {
            reason: reason.to_owned(),
            source: Some(source),
        };
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("rds-db")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| failed("incomplete signing parameters", Box::new(e)))?
        .into();
    let url = format!(
        "https://{host}:{port}/?Action=connect&DBUser={}",
        encode(user)
    );
    let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| failed("the database address is not a valid host", Box::new(e)))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| failed("signing failed", Box::new(e)))?
        .into_parts();
    let mut token = url["https://".len()..].to_owned();
    for (name, value) in instructions.params() {
        token.push('&');
        token.push_str(name);
        token.push('=');
        token.push_str(&encode(value));
    }
    Ok(token)
}

/// Percent-encoding of a query value: everything but the unreserved characters of RFC 3986.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_a_presigned_connect_request_without_its_scheme() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let token = auth_token(
            "db.example.com",
            3306,
            "leasehold_app",
            "eu-west-1",
            &credentials,
            time,
        )
        .unwrap();
        assert!(
            token.starts_with("db.example.com:3306/?Action=connect&DBUser=leasehold_app&"),
            "{token}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20231114%2Feu-west-1%2Frds-db%2Faws4_request",
            "X-Amz-Date=20231114T221320Z",
            "X-Amz-Expires=900",
            "X-Amz-SignedHeaders=host",
        ] {
            assert!(token.contains(part), "{part} missing from {token}");
        }
        let signature = token.split("X-Amz-Signature=").nth(1).unwrap();
        assert_eq!(signature.len(), 64, "{token}");
        // Another user, another signature.
        let other = auth_token(
            "db.example.com",
            3306,
            "other",
            "eu-west-1",
            &credentials,
            time,
        )
        .unwrap();
        assert_ne!(other.split("X-Amz-Signature=").nth(1).unwrap(), signature);
        assert_eq!(encode("a/b+c= d"), "a%2Fb%2Bc%3D%20d");
    }
}
