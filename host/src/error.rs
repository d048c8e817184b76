//! The errors callers branch on. Everything else travels as `anyhow::Error`
//! with context.

use std::fmt;
use std::time::Duration;

use crate::lanes::Lane;
use crate::session::StoreError;

/// Why one call into a component failed. The instance that failed is always
/// thrown away; the pool and the host carry on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The call ran past its wall-clock deadline and was interrupted.
    Timeout {
        /// The component's name.
        component: String,
        /// The deadline it ran past.
        deadline: Duration,
    },
    /// The call used up the CPU time it was allowed and was interrupted.
    CpuLimit {
        /// The component's name.
        component: String,
        /// The CPU time it was allowed.
        limit: Duration,
    },
    /// The component tried to grow its memory past its cap.
    OutOfMemory {
        /// The component's name.
        component: String,
        /// The cap, in bytes.
        limit: u64,
    },
    /// The component trapped (a panic, an `unreachable`, a bad access).
    Trap {
        /// The component's name.
        component: String,
        /// What the trap said, with the guest's last words on stderr if any.
        message: String,
    },
    /// No instance could be made: the pooling allocator is full.
    PoolExhausted {
        /// The component's name.
        component: String,
    },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout {
                component,
                deadline,
            } => {
                write!(
                    f,
                    "component `{component}` ran past its deadline of {deadline:?} and was stopped"
                )
            }
            CallError::CpuLimit { component, limit } => write!(
                f,
                "component `{component}` used its {limit:?} of CPU time and was stopped"
            ),
            CallError::OutOfMemory { component, limit } => write!(
                f,
                "component `{component}` tried to use more than its memory cap of {} MiB and was stopped",
                limit / (1024 * 1024)
            ),
            CallError::Trap { component, message } => {
                write!(f, "component `{component}` trapped: {message}")
            }
            CallError::PoolExhausted { component } => {
                write!(
                    f,
                    "no instance of `{component}` could be made: every instance slot is in use"
                )
            }
        }
    }
}

impl std::error::Error for CallError {}

/// Why a tool call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// No tool has that name.
    UnknownTool(String),
    /// The tool rejected its input.
    InvalidInput(String),
    /// The tool understood the input but failed.
    Failed(String),
    /// The tool's output was not JSON.
    BadOutput(String),
    /// The call itself failed (trap, timeout, memory).
    Call(CallError),
    /// The tool's budget could not pay for the call in time.
    Budget(BudgetError),
    /// The session the call names cannot be used.
    Session(StoreError),
    /// The tool keeps state in a session, was called outside one, and
    /// failed for it (it asked the host for its session and got none).
    NeedsSession(String),
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::UnknownTool(name) => write!(f, "no tool named `{name}`"),
            ToolError::InvalidInput(why) => write!(f, "invalid input: {why}"),
            ToolError::Failed(why) => write!(f, "tool failed: {why}"),
            ToolError::BadOutput(why) => write!(f, "tool returned output that is not JSON: {why}"),
            ToolError::Call(e) => e.fmt(f),
            ToolError::Budget(e) => e.fmt(f),
            ToolError::Session(e) => write!(f, "session: {e}"),
            ToolError::NeedsSession(why) => write!(
                f,
                "this tool keeps its state in a session and was called outside one ({why})"
            ),
        }
    }
}

impl std::error::Error for ToolError {}

impl From<CallError> for ToolError {
    fn from(e: CallError) -> Self {
        ToolError::Call(e)
    }
}

impl From<BudgetError> for ToolError {
    fn from(e: BudgetError) -> Self {
        ToolError::Budget(e)
    }
}

/// Why a draw on a budget was not granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetError {
    /// The tokens would not be there within the time the caller allows.
    Exhausted {
        /// The budget's name.
        budget: String,
        /// When the draw would have been granted.
        retry_after: Duration,
    },
    /// Redis could not be reached and the policy is to fail closed.
    Unavailable {
        /// The budget's name.
        budget: String,
        /// What went wrong.
        reason: String,
    },
    /// The caller gave up while waiting; the tokens were given back.
    Cancelled {
        /// The budget's name.
        budget: String,
    },
}

impl fmt::Display for BudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetError::Exhausted {
                budget,
                retry_after,
            } => write!(
                f,
                "budget `{budget}` is spent for now: retry in {:.1} s",
                retry_after.as_secs_f64()
            ),
            BudgetError::Unavailable { budget, reason } => write!(
                f,
                "budget `{budget}` cannot be drawn: Redis is unreachable ({reason}) and redis.on_unreachable is fail-closed"
            ),
            BudgetError::Cancelled { budget } => {
                write!(f, "gave up waiting for budget `{budget}`")
            }
        }
    }
}

impl std::error::Error for BudgetError {}

/// Why a job was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    /// The lane's queue is full.
    LaneFull {
        /// The lane.
        lane: Lane,
        /// Jobs already waiting in it.
        queued: usize,
    },
    /// The host is shutting down.
    ShuttingDown,
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::LaneFull { lane, queued } => write!(
                f,
                "the {lane} lane is full: {queued} jobs are already waiting (lanes.{lane}.queue); try again later"
            ),
            SubmitError::ShuttingDown => f.write_str("the host is shutting down"),
        }
    }
}

impl std::error::Error for SubmitError {}

pub use warmlane_pdf::DocumentError;
