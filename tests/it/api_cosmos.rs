//! The HTTP API suite end to end on Cosmos DB (the local Cosmos-compatible
//! server, and the SDK's in-memory emulator).

mod server {
    use crate::http_suite;
    crate::http_suite!(crate::common::cosmos::server_store());
}

mod emulator {
    use crate::http_suite;
    crate::http_suite!(crate::common::cosmos::emulator_store());
}
