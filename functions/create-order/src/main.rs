//! The `create-order` Lambda entry point: all wiring lives in `order_service::app::serve`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    order_service::app::serve(create_order::handle).await
}
