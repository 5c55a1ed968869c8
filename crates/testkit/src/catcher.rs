//! A stand-in for CloudFormation's pre-signed `ResponseURL`: an HTTP/1.1 server on 127.0.0.1
//! that records every PUT body and answers 200 (or a status you choose).

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Caught {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: String,
}

pub struct ResponseCatcher {
    url: String,
    caught: Arc<Mutex<Vec<Caught>>>,
    task: JoinHandle<()>,
}

impl ResponseCatcher {
    /// Starts a catcher answering `status` to every request.
    pub async fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let url = format!(
            "http://{}/cloudformation-response?X-Amz-Signature=test",
            listener.local_addr().expect("local addr")
        );
        let caught = Arc::new(Mutex::new(Vec::new()));
        let sink = caught.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = request_line.split_whitespace();
                    let method = parts.next().unwrap_or_default().to_owned();
                    let path = parts.next().unwrap_or_default().to_owned();
                    let mut length = 0usize;
                    let mut content_type = None;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            let value = value.trim().to_owned();
                            match name.to_ascii_lowercase().as_str() {
                                "content-length" => length = value.parse().unwrap_or(0),
                                "content-type" => content_type = Some(value),
                                _ => {}
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push(Caught {
                        method,
                        path,
                        content_type,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = reader.get_mut().write_all(reply.as_bytes()).await;
                });
            }
        });
        ResponseCatcher { url, caught, task }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request received so far.
    pub fn caught(&self) -> Vec<Caught> {
        self.caught
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for ResponseCatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
