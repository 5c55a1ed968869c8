//! Task tokens of callback tasks (`.waitForTaskToken`), and the three API actions that answer
//! them: SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat.
//!
//! A token is the `$$.Task.Token` the interpreter made for the task (a version 4 UUID in
//! lower-case hex). The task registers it ([`Callbacks::register`]) before it starts the work
//! that will call back, and holds the returned [`Waiter`] while it waits. A token is then:
//! - open until the first SendTaskSuccess or SendTaskFailure completes it, or the waiter is
//!   dropped (the task's future ended: `TimeoutSeconds` or `HeartbeatSeconds` fired, the
//!   execution was stopped or ended, the invocation failed);
//! - closed after: every later call gets `TaskTimedOut`, as AWS answers for a task that no
//!   longer waits. The last [`KEEP_CLOSED_TOKENS`] closed tokens are remembered; an older one
//!   is forgotten (memory stays bounded on a long-running stack) and gets `TaskDoesNotExist`.
//!
//! Errors: `InvalidToken` for a token this stack could never have issued (empty, longer than
//! 2048 characters, not of the UUID shape), `TaskDoesNotExist` for a well-formed one it did not
//! issue, `TaskTimedOut` for a closed one, `InvalidOutput` for an output that is not JSON or
//! is over 256 KiB.

use super::{ApiError, MAX_PAYLOAD};
use leasehold_asl::invoker::{Heartbeat, TaskError};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// AWS's limit on a task token's length.
const MAX_TOKEN: usize = 2048;
/// AWS's limits on SendTaskFailure's `error` and `cause`.
const MAX_ERROR: usize = 256;
const MAX_CAUSE: usize = 32_768;

enum Token {
    Open {
        complete: oneshot::Sender<Result<Value, TaskError>>,
        heartbeat: Heartbeat,
    },
    Closed,
}

/// How many closed tokens are remembered (about 100 bytes each).
pub const KEEP_CLOSED_TOKENS: usize = 100_000;

/// The tokens, and the closed ones in the order they closed.
struct Registry {
    tokens: HashMap<String, Token>,
    closed: VecDeque<String>,
    keep_closed: usize,
}

impl Registry {
    /// Marks a token closed (returning what it was) and forgets the oldest closed ones beyond
    /// what is kept.
    fn close(&mut self, token: &str) -> Option<Token> {
        let entry = self.tokens.get_mut(token)?;
        let was = std::mem::replace(entry, Token::Closed);
        if matches!(was, Token::Open { .. }) {
            self.closed.push_back(token.to_owned());
            while self.closed.len() > self.keep_closed {
                if let Some(old) = self.closed.pop_front() {
                    self.tokens.remove(&old);
                }
            }
        }
        Some(was)
    }
}

type Tokens = Arc<Mutex<Registry>>;

/// Every open task token the service issued, and the last closed ones.
pub struct Callbacks {
    tokens: Tokens,
}

impl Default for Callbacks {
    fn default() -> Self {
        Self::keeping_closed(KEEP_CLOSED_TOKENS)
    }
}

/// Whether a token has the shape of those the interpreter makes: `xxxxxxxx-xxxx-4xxx-Yxxx-`
/// `xxxxxxxxxxxx` in lower-case hex, Y one of 8, 9, a, b.
fn issued_shape(token: &str) -> bool {
    let bytes = token.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            14 => b == b'4',
            19 => matches!(b, b'8' | b'9' | b'a' | b'b'),
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

fn check_shape(token: &str) -> Result<(), ApiError> {
    let why = if token.is_empty() {
        "the token is empty"
    } else if token.len() > MAX_TOKEN {
        "the token is longer than 2048 characters"
    } else if !issued_shape(token) {
        "the token is not one Step Functions issues"
    } else {
        return Ok(());
    };
    Err(ApiError::new(
        "InvalidToken",
        format!("Invalid Token: '{why}'"),
    ))
}

fn too_long(member: &str, max: usize) -> ApiError {
    ApiError::new(
        "ValidationException",
        format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have length less than or equal to {max}"
        ),
    )
}

impl Callbacks {
    /// Callbacks that remember the last `keep` closed tokens.
    pub fn keeping_closed(keep: usize) -> Self {
        Callbacks {
            tokens: Arc::new(Mutex::new(Registry {
                tokens: HashMap::new(),
                closed: VecDeque::new(),
                keep_closed: keep,
            })),
        }
    }

    /// Opens a token for a task that is about to start its work; `None` if the token was
    /// already issued (which a fresh random UUID never is).
    pub fn register(&self, token: &str, heartbeat: Heartbeat) -> Option<Waiter> {
        let (complete, outcome) = oneshot::channel();
        let mut registry = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        if registry.tokens.contains_key(token) {
            return None;
        }
        registry.tokens.insert(
            token.to_owned(),
            Token::Open {
                complete,
                heartbeat,
            },
        );
        Some(Waiter {
            token: token.to_owned(),
            tokens: self.tokens.clone(),
            outcome,
        })
    }

    /// SendTaskSuccess: `output` (JSON text) becomes the task's result.
    pub fn succeed(&self, token: &str, output: &str) -> Result<(), ApiError> {
        check_shape(token)?;
        if output.len() > MAX_PAYLOAD {
            return Err(ApiError::new(
                "InvalidOutput",
                "Invalid Output: 'The output is larger than 262144 bytes'",
            ));
        }
        let value: Value = serde_json::from_str(output).map_err(|e| {
            ApiError::new(
                "InvalidOutput",
                format!("Invalid Output: 'The output is not valid JSON: {e}'"),
            )
        })?;
        self.complete(token, Ok(value))
    }

    /// SendTaskFailure: the task fails with `error` and `cause`. Without an `error` the task's
    /// error name is empty (it is optional on AWS too); `States.ALL` and `States.TaskFailed`
    /// still match it.
    pub fn fail(
        &self,
        token: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), ApiError> {
        check_shape(token)?;
        if error.is_some_and(|e| e.chars().count() > MAX_ERROR) {
            return Err(too_long("error", MAX_ERROR));
        }
        if cause.is_some_and(|c| c.chars().count() > MAX_CAUSE) {
            return Err(too_long("cause", MAX_CAUSE));
        }
        self.complete(
            token,
            Err(TaskError {
                error: error.unwrap_or_default().to_owned(),
                cause: cause.map(str::to_owned),
            }),
        )
    }

    /// SendTaskHeartbeat: the task's `HeartbeatSeconds` start again from `now_millis`.
    pub fn heartbeat(&self, token: &str, now_millis: i64) -> Result<(), ApiError> {
        check_shape(token)?;
        let registry = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        match registry.tokens.get(token) {
            None => Err(does_not_exist()),
            Some(Token::Closed) => Err(timed_out()),
            Some(Token::Open { heartbeat, .. }) => {
                heartbeat.beat(now_millis);
                Ok(())
            }
        }
    }

    /// Whether a task still waits on `token`.
    pub fn is_open(&self, token: &str) -> bool {
        let registry = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        matches!(registry.tokens.get(token), Some(Token::Open { .. }))
    }

    /// The tokens that are open (a task waits on each).
    pub fn open(&self) -> Vec<String> {
        let registry = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let mut open: Vec<String> = registry
            .tokens
            .iter()
            .filter(|(_, t)| matches!(t, Token::Open { .. }))
            .map(|(k, _)| k.clone())
            .collect();
        open.sort();
        open
    }

    fn complete(&self, token: &str, outcome: Result<Value, TaskError>) -> Result<(), ApiError> {
        let mut registry = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let Some(was) = registry.close(token) else {
            return Err(does_not_exist());
        };
        match was {
            Token::Closed => Err(timed_out()),
            Token::Open { complete, .. } => {
                // Sent under the lock: a waiter that closes its token (under the same lock)
                // either finds this outcome or made this call answer TaskTimedOut.
                let _ = complete.send(outcome);
                Ok(())
            }
        }
    }
}

fn does_not_exist() -> ApiError {
    ApiError::new(
        "TaskDoesNotExist",
        "Task Does Not Exist: 'Provided task does not exist'",
    )
}

fn timed_out() -> ApiError {
    ApiError::new(
        "TaskTimedOut",
        "Task Timed Out: 'Provided task does not exist anymore'",
    )
}

/// A task waiting for its token to be completed; dropping it closes the token.
pub struct Waiter {
    token: String,
    tokens: Tokens,
    outcome: oneshot::Receiver<Result<Value, TaskError>>,
}

impl Waiter {
    /// The result SendTaskSuccess or SendTaskFailure gave. Cancel-safe: it can lose a race
    /// and be awaited again.
    pub async fn outcome(&mut self) -> Result<Value, TaskError> {
        (&mut self.outcome).await.unwrap_or_else(|_| {
            // The sender lives in the open entry, which only `complete` takes (and sends).
            Err(TaskError {
                error: "States.Runtime".into(),
                cause: Some("the task token was closed without an answer".into()),
            })
        })
    }

    /// Closes the token now; returns the outcome of a callback that completed it before.
    pub fn close(mut self) -> Option<Result<Value, TaskError>> {
        self.close_token();
        self.outcome.try_recv().ok()
    }

    fn close_token(&mut self) {
        let mut registry = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        registry.close(&self.token);
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.close_token();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0f8e5a4c-1b2d-4c3e-9f10-aabbccddeeff";

    #[test]
    fn only_tokens_of_the_issued_shape_are_valid() {
        assert!(issued_shape(TOKEN));
        let issued = leasehold_asl::intrinsics::uuid_v4(u64::MAX, 0);
        assert!(issued_shape(&issued), "{issued}");
        for bad in [
            "",
            "not-a-token",
            &TOKEN.to_uppercase(),
            &TOKEN.replace("-4c3e", "-5c3e"),
            &TOKEN.replace("-9f10", "-7f10"),
            &format!("{TOKEN}0"),
            &"a".repeat(2000),
        ] {
            let e = Callbacks::default().heartbeat(bad, 0).unwrap_err();
            assert_eq!(e.kind, "InvalidToken", "{bad:?}");
        }
    }

    /// GIVEN an open token WHEN it is completed twice THEN the task gets the first outcome
    /// and the second call is TaskTimedOut; an unknown token is TaskDoesNotExist.
    #[tokio::test]
    async fn a_token_completes_once() {
        let callbacks = Callbacks::default();
        let mut waiter = callbacks.register(TOKEN, Heartbeat::default()).unwrap();
        assert!(callbacks.register(TOKEN, Heartbeat::default()).is_none());
        assert_eq!(callbacks.open(), [TOKEN]);
        callbacks.succeed(TOKEN, r#"{"leaseId": "l1"}"#).unwrap();
        assert_eq!(
            waiter.outcome().await,
            Ok(serde_json::json!({"leaseId": "l1"}))
        );
        let again = callbacks.fail(TOKEN, Some("E"), None).unwrap_err();
        assert_eq!(again.kind, "TaskTimedOut");
        assert!(callbacks.open().is_empty());
        let other = TOKEN.replace("0f8e", "1f8e");
        let e = callbacks.succeed(&other, "{}").unwrap_err();
        assert_eq!(e.kind, "TaskDoesNotExist");
    }

    /// GIVEN callbacks that remember two closed tokens WHEN a third closes THEN the oldest is
    /// forgotten (TaskDoesNotExist), the last two still answer TaskTimedOut, and an open token
    /// is never forgotten however many close after it.
    #[tokio::test]
    async fn only_the_last_closed_tokens_are_remembered() {
        let callbacks = Callbacks::keeping_closed(2);
        let token = |i: u64| leasehold_asl::intrinsics::uuid_v4(i, 7);
        let _open = callbacks
            .register(&token(99), Heartbeat::default())
            .unwrap();
        for i in 0..3 {
            drop(callbacks.register(&token(i), Heartbeat::default()).unwrap());
        }
        let e = callbacks.succeed(&token(0), "{}").unwrap_err();
        assert_eq!(e.kind, "TaskDoesNotExist");
        for i in 1..3 {
            let e = callbacks.succeed(&token(i), "{}").unwrap_err();
            assert_eq!(e.kind, "TaskTimedOut", "{i}");
        }
        assert_eq!(callbacks.open(), [token(99)]);
        assert_eq!(callbacks.heartbeat(&token(99), 1), Ok(()));
    }

    #[tokio::test]
    async fn a_dropped_waiter_closes_its_token() {
        let callbacks = Callbacks::default();
        let hb = Heartbeat::default();
        let waiter = callbacks.register(TOKEN, hb.clone()).unwrap();
        assert_eq!(callbacks.heartbeat(TOKEN, 42), Ok(()));
        drop(waiter);
        for e in [
            callbacks.heartbeat(TOKEN, 43).unwrap_err(),
            callbacks.succeed(TOKEN, "{}").unwrap_err(),
            callbacks.fail(TOKEN, None, None).unwrap_err(),
        ] {
            assert_eq!(e.kind, "TaskTimedOut");
        }
    }

    /// A callback that came before the waiter closed its token is not lost by the close.
    #[tokio::test]
    async fn a_close_keeps_an_earlier_callback() {
        let callbacks = Callbacks::default();
        let waiter = callbacks.register(TOKEN, Heartbeat::default()).unwrap();
        callbacks.fail(TOKEN, None, Some("why")).unwrap();
        let outcome = waiter.close().expect("the earlier callback");
        assert_eq!(
            outcome,
            Err(TaskError {
                error: String::new(),
                cause: Some("why".into())
            })
        );
        let waiter = callbacks
            .register(&TOKEN.replace("0f8e", "2f8e"), Heartbeat::default())
            .unwrap();
        assert!(waiter.close().is_none());
    }

    #[test]
    fn outputs_must_be_json_within_the_limit_and_change_nothing_otherwise() {
        let callbacks = Callbacks::default();
        let _waiter = callbacks.register(TOKEN, Heartbeat::default()).unwrap();
        for bad in [
            "",
            "{",
            "not json",
            &format!("\"{}\"", "x".repeat(MAX_PAYLOAD)),
        ] {
            let e = callbacks.succeed(TOKEN, bad).unwrap_err();
            assert_eq!(e.kind, "InvalidOutput", "{}", &bad[..bad.len().min(20)]);
        }
        let e = callbacks
            .fail(TOKEN, Some(&"e".repeat(257)), None)
            .unwrap_err();
        assert_eq!(e.kind, "ValidationException");
        assert_eq!(callbacks.open(), [TOKEN]);
    }
}
