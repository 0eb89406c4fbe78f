//! Blocking work (hashing, file copies, archive writing) run off the async runtime, so
//! it never stalls the downloads and uploads in flight on the runtime's threads.

/// Runs `work` on tokio's blocking pool and returns its result. A panic in `work` is
/// resumed here, as if `work` had run inline, rather than turned into an I/O error that
/// would hide the bug.
pub async fn blocking<T, F>(work: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only a runtime shutting down cancels a blocking task, and the runtime
            // outlives every call made from inside it.
            Err(error) => panic!("blocking task cancelled: {error}"),
        },
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn returns_the_value() {
        assert_eq!(super::blocking(|| 6 * 7).await, 42);
    }

    #[tokio::test]
    #[should_panic(expected = "boom")]
    async fn resumes_a_panic() {
        super::blocking(|| panic!("boom")).await;
    }
}
