//! The CPU scheduling policy of the server's threads: `SCHED_BATCH` on Linux unless `IDP_CPU_SCHEDULING=normal`.
//!
//! The server is several threads that hand work to each other: the runtime's workers, and sqlx's thread of
//! each SQLite connection, which sends every row and every statement's result back one message at a time.
//! Under the default policy Linux lets a thread that is woken preempt the one running, so on a shared core
//! each message became two context switches: about three per refresh, eight per batch, and the kernel's task
//! switch was 13% of a refresh's samples (docs/performance.md). Under `SCHED_BATCH` (sched(7))
//! a woken thread waits for the running one to block or for the next tick: the SQLite thread sends a whole
//! batch's rows before the worker takes them all. The CPU share and the nice value are those of the default
//! policy: only the wake-up preemption between tasks goes, which is what a throughput server wants
//! ("workloads that want a deterministic scheduling policy without interactivity causing extra preemptions
//! between the workload's tasks").
//!
//! A new thread inherits its creator's policy, so setting it on the main thread before the runtime starts
//! covers every thread the process makes.

use crate::config::CpuScheduling;

/// Gives the calling thread, and so every thread it starts afterwards, `policy`. A failure is not fatal:
/// the threads keep the policy they had, which only costs speed. Elsewhere than on Linux there is no such
/// policy, and the default `batch` leaves the threads as they are.
pub fn apply(policy: CpuScheduling) -> Result<(), String> {
    match policy {
        CpuScheduling::Normal => Ok(()),
        CpuScheduling::Batch => set_batch(),
    }
}

#[cfg(target_os = "linux")]
fn set_batch() -> Result<(), String> {
    use preempt_rt::sched::{Pid, Scheduler, SchedulerParams, set_scheduler};
    // The normal policies take priority 0; the nice value is left as it is.
    set_scheduler(Pid::current_thread(), Scheduler::SCHED_BATCH, SchedulerParams { priority: 0 })
        .map_err(|e| format!("cannot set the SCHED_BATCH policy: {e}"))
}

#[cfg(not(target_os = "linux"))]
fn set_batch() -> Result<(), String> {
    tracing::debug!("SCHED_BATCH is Linux's: the threads keep the system's default policy");
    Ok(())
}
