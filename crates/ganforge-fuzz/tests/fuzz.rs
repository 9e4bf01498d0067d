//! The CI run: every target from its committed seed corpus plus a bounded number of mutated
//! inputs (a fixed mutation seed, so a failure here reproduces), asserting no failure. The
//! long mode (`cargo run --release -p ganforge-fuzz -- --minutes N`) runs the same targets for
//! as long as asked. The last tests plant each kind of failure, to show the harness sees them.

use std::time::Duration;

use ganforge_fuzz::{fuzz, load_corpus, run_one, Budget, Ctx, FailureKind, Limits, Verdict, TARGETS};

#[global_allocator]
static A: ganforge_fuzz::alloc::Counting = ganforge_fuzz::alloc::Counting;

/// Mutation seed of the CI run: fixed, so the same inputs are tried every time.
const CI_SEED: u64 = 0x6761_6e66_6f72_6765;

/// A generous limit per input for CI: a debug build on a loaded 2-core runner is several
/// times slower than the long mode's release build (2 s there).
const CI_SLOW: Duration = Duration::from_secs(10);

fn limits() -> Limits {
    Limits { slow: CI_SLOW, keep_failures: 5 }
}

/// Fuzzes one target for `inputs` mutated inputs and asserts no failure and that some inputs
/// parse (a corpus or mutator that never gets past the first check would test nothing).
fn run_target(name: &str, inputs: u64) {
    assert!(ganforge_fuzz::alloc::installed(), "the counting allocator is not installed");
    let target = TARGETS.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no target {name}"));
    let seeds = load_corpus(&ganforge_fuzz::corpus_dir(), name).unwrap();
    assert!(!seeds.is_empty(), "{name} has no seed corpus");
    let mut ctx = Ctx::new().unwrap();
    let report = fuzz(target, &mut ctx, &seeds, Budget::Inputs(inputs), CI_SEED, &limits(), |_| {});
    println!(
        "{name}: {} inputs tried ({} seeds), {} parsed, {} failures, largest allocation {}, slowest {:.0} ms",
        report.tried,
        seeds.len(),
        report.accepted,
        report.failed,
        ganforge_fuzz::mib(report.largest_alloc),
        report.slowest.as_secs_f64() * 1000.0
    );
    let shown: Vec<String> = report.failures.iter().map(|f| format!("{} on {:?}", f.kind, String::from_utf8_lossy(&f.input))).collect();
    assert_eq!(report.failed, 0, "{name}: {}", shown.join("\n"));
    assert_eq!(report.tried, seeds.len() as u64 + inputs);
    assert!(report.accepted > 0, "{name}: no input parsed");
}

macro_rules! targets {
    ($($name:ident: $inputs:expr;)*) => {
        $(
            #[test]
            fn $name() {
                run_target(stringify!($name), $inputs);
            }
        )*

        #[test]
        fn every_target_is_run_in_ci() {
            let ci = [$(stringify!($name)),*];
            for t in TARGETS {
                assert!(ci.contains(&t.name), "target {} has no CI test", t.name);
            }
        }
    };
}

// Inputs per target: a couple of thousand where an input takes well under a millisecond, fewer
// where each input opens files or decodes and resizes images.
targets! {
    idx: 2000;
    npy: 2000;
    quickdraw: 500;
    svhn_mat: 1000;
    cifar: 1000;
    dogs_voc: 500;
    image: 1000;
    config_toml: 500;
    config_set: 1000;
    safetensors: 1000;
    state_json: 2000;
    pth: 1000;
    query: 2000;
}

#[test]
fn a_planted_panic_is_caught_with_its_message() {
    let out = run_one(|| panic!("planted: index 9 of 3"), usize::MAX, &limits());
    let Err(FailureKind::Panic(msg)) = out.result else { panic!("not caught as a panic: {:?}", out.result) };
    assert!(msg.starts_with("planted: index 9 of 3 at ") && msg.contains("fuzz.rs"), "{msg}");
}

#[test]
fn a_planted_huge_allocation_fails_the_input() {
    // 300 MiB reserved (not touched, so it costs no memory) against a 256 MiB bound.
    let out = run_one(
        || {
            let v: Vec<u8> = Vec::with_capacity(300 << 20);
            std::hint::black_box(&v);
            Ok(Verdict::Value)
        },
        ganforge_fuzz::targets::BYTES_BOUND,
        &limits(),
    );
    assert_eq!(out.result, Err(FailureKind::Alloc { bytes: 300 << 20, bound: 256 << 20 }));
    assert_eq!(out.result.unwrap_err().to_string(), "allocated 300.0 MiB in one piece, over the bound of 256.0 MiB");
}

#[test]
fn a_wrong_value_an_empty_error_and_a_slow_input_fail() {
    let out = run_one(|| Err("shape [2] with 3 values".into()), usize::MAX, &limits());
    assert_eq!(out.result, Err(FailureKind::Invariant("shape [2] with 3 values".into())));
    let slow = Limits { slow: Duration::from_millis(20), keep_failures: 1 };
    let out = run_one(
        || {
            std::thread::sleep(Duration::from_millis(60));
            Ok(Verdict::Refused)
        },
        usize::MAX,
        &slow,
    );
    assert!(matches!(out.result, Err(FailureKind::Slow(d)) if d >= Duration::from_millis(60)), "{:?}", out.result);
}

/// A whole run with a planted bug: the failures are counted, kept with their inputs, and saved.
#[test]
fn a_run_reports_and_saves_failing_inputs() {
    fn picky(_: &mut Ctx, bytes: &[u8]) -> Result<Verdict, String> {
        if bytes.first() == Some(&0xff) {
            panic!("planted: a leading 0xff");
        }
        Ok(Verdict::Value)
    }
    let target = ganforge_fuzz::Target {
        name: "planted",
        about: "panics on a leading 0xff",
        run: picky,
        max_alloc: usize::MAX,
        text: false,
        dict: Vec::new,
    };
    let mut ctx = Ctx::new().unwrap();
    let report = fuzz(&target, &mut ctx, &[vec![0xff, 1], vec![1, 2, 3]], Budget::Inputs(500), 1, &limits(), |_| {});
    assert_eq!(report.tried, 502);
    assert!(report.failed >= 1 && report.failures.len() <= 5, "{} failed, {} kept", report.failed, report.failures.len());
    assert_eq!(report.failures[0].input, vec![0xff, 1], "the failing seed comes first");
    assert!(report.failures.iter().all(|f| f.input.first() == Some(&0xff)));
    let dir = tempfile::tempdir().unwrap();
    let saved = ganforge_fuzz::save_failures(&report, dir.path()).unwrap();
    assert_eq!(std::fs::read(&saved[0]).unwrap(), vec![0xff, 1]);
    let why = std::fs::read_to_string(saved[0].with_extension("txt")).unwrap();
    assert!(why.starts_with("panic: planted: a leading 0xff at "), "{why}");
}

/// A MAT file of 300 bytes whose array claims 100 MB: the reader must not reserve the 100 MB on
/// the word of its length field (it used to, up to 1 GiB), only what arrives.
#[test]
fn a_mat_length_field_alone_reserves_little() {
    let mut f = Vec::new();
    f.extend(format!("{:116}", "MATLAB 5.0 MAT-file, a length that lies").bytes());
    f.extend([0u8; 8]); // subsystem offset
    f.extend(0x0100u16.to_le_bytes());
    f.extend(b"IM");
    let u32s = |f: &mut Vec<u8>, v: &[u32]| v.iter().for_each(|x| f.extend(x.to_le_bytes()));
    let claimed = 100_000_000u32;
    u32s(&mut f, &[14, 48 + claimed]); // miMATRIX and its body length
    u32s(&mut f, &[6, 8, 9, 0]); // array flags: mxUINT8_CLASS
    u32s(&mut f, &[5, 8, 1, claimed]); // dimensions 1 x 100,000,000
    u32s(&mut f, &[(1 << 16) | 1]); // the name "X" as a small element
    f.extend(b"X\0\0\0");
    u32s(&mut f, &[2, claimed]); // miUINT8 data of 100 MB...
    f.extend([7u8; 10]); // ...of which 10 bytes are there
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("lying.mat");
    std::fs::write(&p, &f).unwrap();
    let (result, largest) = ganforge_fuzz::alloc::largest_during(|| ganforge::data::mat::read_mat(&p, &["X"]).map(|v| v.len()));
    assert!(result.is_err(), "a 300-byte file cannot hold 100 MB: {result:?}");
    assert!(largest <= 2 << 20, "reserved {largest} bytes for a {}-byte file", f.len());
}
