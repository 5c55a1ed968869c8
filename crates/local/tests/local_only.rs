//! The stack answers only local tools: a request addressed to another host name (DNS
//! rebinding) or a POST a web page could send cross-site without a preflight is refused, and
//! changes nothing. All requests go to the stack's own 127.0.0.1 socket.

mod common;

use common::{Setup, start};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_a_web_page_could_forge_are_refused_and_change_nothing() {
    let t = start(Setup::default()).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let port = t.url.rsplit(':').next().unwrap().to_owned();
    let status = |r: reqwest::Response| r.status().as_u16();

    // The stack's own address and localhost with its port are answered ...
    let ok = http.get(format!("{}/health", t.url)).send().await.unwrap();
    assert_eq!(status(ok), 200);
    let named = http
        .get(format!("{}/health", t.url))
        .header("host", format!("localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(named), 200);

    // ... another host name (a rebound DNS name pointing at 127.0.0.1) is not
    let rebound = http
        .get(format!("{}/stats", t.url))
        .header("host", format!("attacker.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(rebound), 403);

    // A form post to the Lambda API (no X-Amz-* header, a form's content type) invokes nothing
    let before = t.stats().await["functions"].clone();
    for content_type in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data",
    ] {
        let forged = http
            .post(format!(
                "{}/2015-03-31/functions/{}-ReleaseFunction/invocations",
                t.url, t.name
            ))
            .header("content-type", content_type)
            .body(r#"{"pool": "main", "reclaimExpired": true}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(status(forged), 403, "{content_type}");
    }
    // and so is one to the Step Functions API
    let forged = http
        .post(format!("{}/", t.url))
        .header("content-type", "text/plain")
        .body(r#"{"stateMachineArn": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(status(forged), 403);
    assert_eq!(t.stats().await["functions"], before, "nothing was invoked");

    // An AWS client's request is answered as before
    let listed = http
        .post(format!("{}/", t.url))
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", "AWSStepFunctions.ListStateMachines")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(status(listed), 200);
    t.shutdown().await;
}
