//! OFA folders that cannot be used give errors naming the file and the field.

use std::path::Path;

use burn::prelude::*;
use dynofa_slice::ofa_dir;

fn copy_golden_subnet(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["net.config", "run.config", "init"] {
        std::fs::copy(dynofa_golden::path(&format!("subnet/{f}")), to.join(f)).unwrap();
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("net.config");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, v.to_string()).unwrap();
}

fn load_error(dir: &Path) -> String {
    match ofa_dir::load(dir, &Device::flex()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_architectures_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    // (case name, the edit to the network config, the field the error must name)
    type Case = (&'static str, Box<dyn Fn(&mut serde_json::Value)>, &'static str);
    let cases: Vec<Case> = vec![
        ("proxyless", Box::new(|v| v["name"] = "ProxylessNASNets".into()), ".name"),
        ("layer", Box::new(|v| v["blocks"][3]["conv"]["name"] = "ZeroLayer".into()), ".blocks[3].conv.name"),
        ("act", Box::new(|v| v["blocks"][2]["conv"]["act_func"] = "tanh".into()), ".blocks[2].conv.act_func"),
        ("groups", Box::new(|v| v["blocks"][5]["conv"]["groups"] = 2.into()), ".blocks[5].conv.groups"),
        ("chain", Box::new(|v| v["blocks"][4]["conv"]["in_channels"] = 40.into()), ".blocks[4].conv.in_channels"),
        ("stem", Box::new(|v| v["first_conv"]["stride"] = 1.into()), ".first_conv.stride"),
    ];
    for (name, edit, field) in cases {
        let dir = tmp.path().join(name);
        copy_golden_subnet(&dir);
        edit_config(&dir, edit);
        let err = load_error(&dir);
        assert!(err.contains(field) && err.contains("net.config"), "{name}: {err}");
    }
}

#[test]
fn missing_or_broken_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("no_run_config");
    copy_golden_subnet(&dir);
    std::fs::remove_file(dir.join("run.config")).unwrap();
    assert!(load_error(&dir).contains("run.config"));

    let dir = tmp.path().join("bad_json");
    copy_golden_subnet(&dir);
    std::fs::write(dir.join("net.config"), "{ not json").unwrap();
    assert!(load_error(&dir).contains("net.config"));

    let dir = tmp.path().join("cut_init");
    copy_golden_subnet(&dir);
    let bytes = std::fs::read(dir.join("init")).unwrap();
    std::fs::write(dir.join("init"), &bytes[..bytes.len() / 3]).unwrap();
    assert!(load_error(&dir).contains("init"));

    // Weights of another architecture (one block fewer in the config).
    let dir = tmp.path().join("mismatch");
    copy_golden_subnet(&dir);
    edit_config(&dir, |v| {
        v["blocks"][2]["conv"]["kernel_size"] = 3.into();
    });
    let err = load_error(&dir);
    assert!(err.contains("blocks.2.conv.depth_conv.conv.weight") && err.contains("shape"), "{err}");
}
