//! The IAM authentication token is checked against an independent signer: botocore's
//! `generate_db_auth_token` (the AWS SDK for Python, which the local services' tooling
//! installs), at the same instant and with the same credentials. Equal signatures over the
//! same parameters mean RDS will accept what this crate signs.

use aws_credential_types::Credentials;
use leasehold_db::iam::auth_token;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime};

const BOTOCORE_TOKEN: &str = r#"
import datetime, os, sys
import botocore.auth, botocore.session
instant = datetime.datetime.fromtimestamp(int(os.environ["INSTANT"]), datetime.timezone.utc)
botocore.auth.get_current_datetime = lambda *args, **kwargs: instant.replace(tzinfo=None)
session = botocore.session.get_session()
session.set_credentials(os.environ["KEY_ID"], os.environ["SECRET"], os.environ.get("TOKEN") or None)
client = session.create_client("rds", region_name=os.environ["REGION"])
sys.stdout.write(client.generate_db_auth_token(os.environ["HOST"], int(os.environ["PORT"]), os.environ["USER_NAME"]))
"#;

/// A token's address and its query parameters, decoded.
fn parts(token: &str) -> (String, BTreeMap<String, String>) {
    let (address, query) = token.split_once("/?").expect("host:port/?query");
    let decode = |text: &str| {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).expect("hex"));
                i += 3;
            } else {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
        String::from_utf8(out).expect("UTF-8")
    };
    let params = query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').expect("name=value");
            (decode(k), decode(v))
        })
        .collect();
    (address.to_owned(), params)
}

fn botocore(instant: u64, session_token: Option<&str>) -> String {
    let output = Command::new("python3")
        .args(["-c", BOTOCORE_TOKEN])
        .env("INSTANT", instant.to_string())
        .env("KEY_ID", "AKIDEXAMPLE")
        .env("SECRET", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        .env("TOKEN", session_token.unwrap_or(""))
        .env("REGION", "eu-central-1")
        .env("HOST", "leasehold.abc123.eu-central-1.rds.amazonaws.com")
        .env("PORT", "3306")
        .env("USER_NAME", "leasehold_app")
        .output()
        .expect("python3 runs (scripts/dev-env.sh installs boto3 with moto)");
    assert!(
        output.status.success(),
        "botocore failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn tokens_match_botocore_with_and_without_a_session_token() {
    let instant = 1_750_000_000;
    for session_token in [
        None,
        Some("FwoGZXIvYXdzEJr//////////wEaDOexample+token/with=chars"),
    ] {
        // GIVEN the same credentials, region, address, user and instant
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "test",
        );
        // WHEN both sign a token
        let ours = auth_token(
            "leasehold.abc123.eu-central-1.rds.amazonaws.com",
            3306,
            "leasehold_app",
            "eu-central-1",
            &credentials,
            SystemTime::UNIX_EPOCH + Duration::from_secs(instant),
        )
        .unwrap();
        let theirs = botocore(instant, session_token);

        // THEN they name the same database and user, and carry the same parameters and
        // signature (the order of the parameters may differ)
        let (our_address, our_params) = parts(&ours);
        let (their_address, their_params) = parts(&theirs);
        assert_eq!(our_address, their_address);
        assert_eq!(
            our_address,
            "leasehold.abc123.eu-central-1.rds.amazonaws.com:3306"
        );
        assert_eq!(our_params, their_params, "ours {ours}\ntheirs {theirs}");
        assert_eq!(our_params["Action"], "connect");
        assert_eq!(our_params["DBUser"], "leasehold_app");
        assert_eq!(our_params["X-Amz-Expires"], "900");
        assert_eq!(
            our_params.get("X-Amz-Security-Token").map(String::as_str),
            session_token
        );
    }
}
