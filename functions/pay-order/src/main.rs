//! The `pay-order` Lambda entry point: all wiring lives in `order_service::app::serve`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    order_service::app::serve(pay_order::handle).await
}
