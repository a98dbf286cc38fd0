//! The `create-order` Lambda entry point: all wiring lives in `order_service::app`.

fn main() -> Result<(), lambda_http::Error> {
    order_service::app::run_function(create_order::handle)
}
