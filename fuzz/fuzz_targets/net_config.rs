//! An OFA specialised network's `net.config` (JSON) and a sub-network spec (JSON or RON).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(text) {
        let _ = dynofa_slice::net_config::parse(&json, 224);
    }
    if let Ok(subnet) = dynofa_supernet::SubnetConfig::parse(text) {
        let _ = dynofa_supernet::SupernetConfig::ofa_mbv3(dynofa_supernet::Width::W12).validate(&subnet);
    }
});
