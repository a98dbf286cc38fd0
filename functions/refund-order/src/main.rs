//! The `refund-order` Lambda entry point: all wiring lives in `order_service::app`.

/// mimalloc instead of glibc malloc: the SDK allocates on every call, and glibc's allocator
/// took a fifth of the function's CPU per request (`perf`, ARCHITECTURE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), lambda_http::Error> {
    order_service::app::run_function(refund_order::handle)
}
