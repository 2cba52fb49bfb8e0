#![no_main]
#[global_allocator]
static ALLOC: quarry::fuzzing::BoundedAlloc = quarry::fuzzing::BoundedAlloc;
libfuzzer_sys::fuzz_target!(|data: &[u8]| quarry::fuzzing::stratum_line(data));
