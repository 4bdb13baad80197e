//! grpc (being written).
