//! The HTTP API suite end to end on Cosmos DB (the local Cosmos-compatible
//! server, and the SDK's in-memory emulator).

mod common;
#[path = "common/cosmos.rs"]
mod cosmos;
mod http_suite;

mod server {
    use crate::http_suite;
    crate::http_suite!(crate::cosmos::server_store());
}

mod emulator {
    use crate::http_suite;
    crate::http_suite!(crate::cosmos::emulator_store());
}
