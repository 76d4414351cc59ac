//! The checkpoint guard against walk-arounds: decoys that Python's unpickler would resolve
//! to a forbidden global through the stack, marks, memo or frames; and a differential test
//! in which CPython's own unpickler (restricted, `tests/pickle_oracle.py`) and the guard
//! judge the same generated opcode streams.

use std::path::Path;
use std::process::Command;

use dynofa_supernet::Error;
use dynofa_supernet::pickle_guard::{check_checkpoint, check_pickle};
use dynofa_supernet::pth::write_zip_checkpoint;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bytes behind every storage in the pickle-only tests.
const STORAGE_BYTES: u64 = 4096;

fn short_str(text: &str) -> Vec<u8> {
    let mut out = vec![0x8c, text.len() as u8];
    out.extend_from_slice(text.as_bytes());
    out
}

/// PROTO 4, `body`, STOP.
fn pickle(body: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0x80, 4];
    body.iter().for_each(|part| out.extend_from_slice(part));
    out.push(b'.');
    out
}

fn forbidden(pickle: &[u8]) -> String {
    match check_pickle(pickle, STORAGE_BYTES) {
        Err(Error::ForbiddenGlobal { global, .. }) => global,
        other => panic!("expected a forbidden global, got {other:?}"),
    }
}

#[test]
fn the_decoys_are_refused_with_the_globals_real_name() {
    let (os, system, collections, ordered) = (short_str("os"), short_str("system"), short_str("collections"), short_str("OrderedDict"));
    let call: &[u8] = &[0x8c, 10, b'e', b'c', b'h', b'o', b' ', b'p', b'w', b'n', b'e', b'd', 0x85, b'R'];
    // The decoy: the last two strings popped, STACK_GLOBAL sees 'os' 'system'.
    let decoy = pickle(&[&os, &system, &collections, &ordered, b"00", &[0x93], call]);
    assert_eq!(forbidden(&decoy), "os.system");
    // Through POP_MARK: the allowed names pushed after a MARK are discarded.
    let via_pop_mark = pickle(&[&os, &system, b"(", &collections, &ordered, b"1", &[0x93], call]);
    assert_eq!(forbidden(&via_pop_mark), "os.system");
    // Through DUP: 'system' duplicated over 'os', the allowed pair popped.
    let via_dup = pickle(&[&os, &system, b"2", b"0", &collections, &ordered, b"00", &[0x93], call]);
    assert_eq!(forbidden(&via_dup), "os.system");
    // Through the memo: the names stored, popped, then fetched back (PUT / GET, BINPUT /
    // BINGET, MEMOIZE + LONG_BINGET).
    let via_put = pickle(&[&os, b"p0\n", &system, b"p1\n", b"00", &collections, &ordered, b"00", b"g0\n", b"g1\n", &[0x93], call]);
    assert_eq!(forbidden(&via_put), "os.system");
    let via_binput = pickle(&[&os, b"q\x07", b"0", &system, b"q\x08", b"0", &collections, &ordered, b"00", b"h\x07h\x08", &[0x93], call]);
    assert_eq!(forbidden(&via_binput), "os.system");
    let via_memoize = pickle(&[&os, &[0x94], &system, &[0x94], b"00", b"j\x00\x00\x00\x00j\x01\x00\x00\x00", &[0x93], call]);
    assert_eq!(forbidden(&via_memoize), "os.system");
    // Inside a frame, and with a memo entry overwritten by a later PUT.
    let body: Vec<u8> = [&os[..], &system, &collections, &ordered, b"00", &[0x93], call].concat();
    let mut framed = vec![0x80, 4, 0x95];
    framed.extend_from_slice(&(body.len() as u64 + 1).to_le_bytes());
    framed.extend_from_slice(&body);
    framed.push(b'.');
    assert_eq!(forbidden(&framed), "os.system");
    let overwritten = pickle(&[&collections, b"q\x00", b"0", &short_str("builtins"), b"q\x00", b"0", b"h\x00", &short_str("eval"), &[0x93]]);
    assert_eq!(forbidden(&overwritten), "builtins.eval");
    // As a user meets it: the decoy inside a zip checkpoint given to the importer.
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("evil.pth");
    write_zip_checkpoint(&evil, &decoy, &[]).unwrap();
    let err = format!("{:#}", dynofa_supernet::load_weights(&evil, &burn::prelude::Device::flex()).expect_err("refused"));
    assert!(err.contains("evil.pth") && err.contains("`os.system`"), "{err}");
    // GLOBAL and INST name their global directly.
    assert_eq!(forbidden(&pickle(&[b"cos\nsystem\n"])), "os.system");
    assert_eq!(forbidden(&pickle(&[b"(", &short_str("ls"), b"ios\nsystem\n"])), "os.system");
    // The same shapes with allowed names are accepted.
    assert!(check_pickle(&pickle(&[&collections, &ordered, &[0x93], b")R"]), STORAGE_BYTES).is_ok());
}

#[test]
fn calls_and_builds_are_judged_on_what_is_on_the_stack() {
    let refused = |body: &[&[u8]]| check_pickle(&pickle(body), STORAGE_BYTES).unwrap_err().to_string();
    // A storage type called with a size would allocate it: only rebuilds and OrderedDict() run.
    assert!(refused(&[b"ctorch\nFloatStorage\n", b"J\x00\x00\x00\x40", b"\x85R"]).contains("cannot be proven harmless"));
    // NEWOBJ of anything but OrderedDict, extension codes, out-of-band buffers.
    assert!(refused(&[b"ctorch\nFloatStorage\n", b")\x81"]).contains("NEWOBJ"));
    assert!(refused(&[b"\x82\x01"]).contains("extension registry"));
    assert!(refused(&[b"\x97"]).contains("out-of-band"));
    // APPEND onto an object would call its `append`.
    assert!(refused(&[b"ccollections\nOrderedDict\n)R", b"K\x01a"]).contains("APPEND"));
    // BUILD sets attributes only on a state dict.
    assert!(refused(&[b"ccollections\nOrderedDict\n", b"}b"]).contains("BUILD"));
    assert!(check_pickle(&pickle(&[b"ccollections\nOrderedDict\n)R", b"}b"]), STORAGE_BYTES).is_ok());
}

/// A tensor `_rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), 0, size, stride, False, OrderedDict())`.
fn tensor(key: &str, numel: u64, size: &[u32], stride: &[u32]) -> Vec<u8> {
    let mut out = b"ctorch._utils\n_rebuild_tensor_v2\n((".to_vec();
    out.extend(short_str("storage"));
    out.extend(b"ctorch\nFloatStorage\n");
    out.extend(short_str(key));
    out.extend(short_str("cpu"));
    // LONG1 of 8 bytes: claims beyond 32 bits.
    out.extend([0x8a, 8]);
    out.extend(numel.to_le_bytes());
    out.extend(b"tQK\x00(");
    for &n in size {
        out.push(b'J');
        out.extend(n.to_le_bytes());
    }
    out.extend(b"t(");
    for &n in stride {
        out.push(b'J');
        out.extend(n.to_le_bytes());
    }
    out.extend(b"t\x89ccollections\nOrderedDict\n)RtR");
    out
}

#[test]
fn storages_and_views_must_fit_the_bytes_behind_them() {
    let state_dict = |t: Vec<u8>| pickle(&[b"}", &short_str("w"), &t, b"s"]);
    assert!(check_pickle(&state_dict(tensor("0", 12, &[3, 4], &[4, 1])), 48).is_ok());
    // The storage claims more than backs it; the view reaches past its storage.
    let err = check_pickle(&state_dict(tensor("0", 25_000_000_000, &[5], &[1])), 48).unwrap_err().to_string();
    assert!(err.contains("storage `0` claims") && err.contains("only 48 bytes"), "{err}");
    let err = check_pickle(&state_dict(tensor("0", 12, &[100_000, 100_000], &[100_000, 1])), 48).unwrap_err().to_string();
    assert!(err.contains("claims more than its storage `0` holds"), "{err}");
}

#[test]
fn a_zip_checkpoint_claiming_a_huge_storage_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.pth");
    // 1 KB on disk; its pickle claims a 100 GB storage behind a 16-byte entry.
    let pickle = pickle(&[b"}", &short_str("w"), &tensor("0", 25_000_000_000, &[5], &[1]), b"s"]);
    write_zip_checkpoint(&path, &pickle, &[vec![0u8; 16]]).unwrap();
    let err = check_checkpoint(&path).unwrap_err().to_string();
    assert!(err.contains("25000000000 elements") && err.contains("16 bytes"), "{err}");
    let loaded = dynofa_supernet::load_weights(&path, &burn::prelude::Device::flex());
    let err = format!("{:#}", loaded.expect_err("refused"));
    assert!(err.contains("huge.pth") && err.contains("25000000000"), "{err}");
}

// ---------------------------------------------------------------------------------------
// The differential test.

/// Names the generator builds globals from: allowed and forbidden ones mixed.
const MODULES: &[&str] = &["collections", "torch", "torch._utils", "os", "builtins", "subprocess"];
const NAMES: &[&str] = &["OrderedDict", "FloatStorage", "_rebuild_tensor_v2", "system", "eval", "Popen", "float32", "LongStorage"];

/// One random opcode stream: a mix of plain values, stack and memo operations, globals
/// named every way, calls, and well-formed tensors, then STOP.
fn random_stream(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut out = vec![0x80, *[2u8, 4].get(rng.random_range(0..2)).unwrap()];
    let ops = rng.random_range(2..24);
    let pick = |rng: &mut ChaCha8Rng, list: &[&'static str]| list[rng.random_range(0..list.len())];
    for _ in 0..ops {
        match rng.random_range(0..32) {
            0..=5 => {
                let list = if rng.random_bool(0.5) { MODULES } else { NAMES };
                out.extend(short_str(pick(rng, list)));
            }
            6 => out.extend(b"K\x01"),
            7 => out.extend(b"N"),
            8 => out.push(b'('),
            9 => out.push(b'0'),
            10 => out.push(b'1'),
            11 => out.push(b'2'),
            12 => out.push(0x93),
            13 => out.extend(format!("c{}\n{}\n", pick(rng, MODULES), pick(rng, NAMES)).as_bytes()),
            14 => {
                out.push(b'q');
                out.push(rng.random_range(0..3));
            }
            15 => {
                out.push(b'h');
                out.push(rng.random_range(0..3));
            }
            16 => out.push(0x94),
            17 => out.push(b'R'),
            18 => out.push(b')'),
            19 => out.push(b't'),
            20 => out.push(0x85 + rng.random_range(0..3)),
            21 => out.push(b'}'),
            22 => out.push(b's'),
            23 => out.push(b'u'),
            24 => out.push(b']'),
            25 => out.push(b'a'),
            26 => out.push(b'b'),
            27 => out.extend(format!("i{}\n{}\n", pick(rng, MODULES), pick(rng, NAMES)).as_bytes()),
            28 => out.push(0x81),
            29 => {
                let numel = if rng.random_bool(0.8) { 12 } else { 5000 };
                out.extend(tensor(&rng.random_range(0..2).to_string(), numel, &[3, 4], &[4, 1]));
            }
            30 => out.extend(b"ccollections\nOrderedDict\n)R"),
            _ => out.push(b'o'),
        }
    }
    out.push(b'.');
    out
}

/// A well-formed state dict with a decoy spliced in somewhere.
fn state_dict_with_decoy(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut entries: Vec<Vec<u8>> =
        (0..rng.random_range(1..4)).map(|i| [short_str(&format!("w{i}")), tensor(&i.to_string(), 12, &[3, 4], &[4, 1])].concat()).collect();
    if rng.random_bool(0.7) {
        let decoy =
            [short_str(pick_pair(rng).0), short_str(pick_pair(rng).1), short_str("collections"), short_str("OrderedDict"), b"00".to_vec(), vec![0x93, b'0']]
                .concat();
        let at = rng.random_range(0..=entries.len());
        entries.insert(at, decoy);
    }
    let mut out = vec![0x80, 2];
    out.extend(b"ccollections\nOrderedDict\n)R(");
    entries.iter().for_each(|e| out.extend(e));
    out.extend(b"u.");
    out
}

fn pick_pair(rng: &mut ChaCha8Rng) -> (&'static str, &'static str) {
    [("os", "system"), ("builtins", "eval"), ("torch", "FloatStorage"), ("collections", "OrderedDict")][rng.random_range(0..4)]
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Ok,
    Forbidden(String),
    Error(String),
}

fn python_verdicts(streams: &[Vec<u8>], dir: &Path) -> Vec<Verdict> {
    let cases = dir.join("cases.bin");
    let blob: Vec<u8> = streams.iter().flat_map(|s| (s.len() as u32).to_le_bytes().into_iter().chain(s.iter().copied())).collect();
    std::fs::write(&cases, blob).unwrap();
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pickle_oracle.py");
    let out = Command::new("python3").arg(&oracle).arg(&cases).arg(STORAGE_BYTES.to_string()).output().expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["ok"] == true {
                Verdict::Ok
            } else if let Some(g) = v["forbidden"].as_str() {
                Verdict::Forbidden(g.into())
            } else {
                Verdict::Error(v["error"].as_str().unwrap_or_default().into())
            }
        })
        .collect()
}

#[test]
fn the_guard_and_cpythons_unpickler_agree_on_generated_streams() {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let streams: Vec<Vec<u8>> = (0..6000).map(|i| if i % 3 == 0 { state_dict_with_decoy(&mut rng) } else { random_stream(&mut rng) }).collect();
    let dir = tempfile::tempdir().unwrap();
    let python = python_verdicts(&streams, dir.path());
    assert_eq!(python.len(), streams.len());
    let (mut both_ok, mut both_forbidden, mut both_refuse, mut conservative) = (0, 0, 0, 0);
    let mut disagreements = Vec::new();
    for (stream, python) in streams.iter().zip(&python) {
        let guard = check_pickle(stream, STORAGE_BYTES);
        match (&guard, python) {
            (Ok(_), Verdict::Ok) => both_ok += 1,
            (Err(Error::ForbiddenGlobal { global, .. }), Verdict::Forbidden(g)) if global == g => both_forbidden += 1,
            // The guard refused earlier, for the structure, what Python would refuse too.
            (Err(e), Verdict::Forbidden(_) | Verdict::Error(_)) if !matches!(e, Error::ForbiddenGlobal { .. }) => both_refuse += 1,
            // Stricter than Python, and says so.
            (Err(e), Verdict::Ok) if e.to_string().contains("cannot be proven harmless") => conservative += 1,
            _ => disagreements.push(format!("{stream:02x?}\n  guard: {guard:?}\n  python: {python:?}")),
        }
    }
    eprintln!(
        "{} streams: both accept {both_ok}, same forbidden global {both_forbidden}, both refuse {both_refuse}, guard stricter {conservative}",
        streams.len()
    );
    assert!(disagreements.is_empty(), "{} disagreements, first ones:\n{}", disagreements.len(), disagreements[..disagreements.len().min(5)].join("\n"));
    assert!(both_ok >= 500 && both_forbidden >= 500 && both_refuse >= 500, "the generator exercises every verdict");
    assert!(conservative * 20 <= streams.len(), "the guard is stricter than Python on {conservative} streams");
}
