//! Object storage against a real S3-compatible server (moto, started and stopped by each test,
//! authentication on): the store client's reads, writes and listings, and the three errors a
//! user must tell apart (no such object, denied credential, an object that changed under us);
//! then `lorabeam run` with its inputs in the store (`--data`, `--model_config`,
//! `--init_checkpoint`, `--base_checkpoint`, `--adapter` as s3:// URLs), decoding exactly as
//! from local files, fetching each object once into its cache, and failing with the URL.

use std::path::Path;
use std::process::{Command, Output};

use lorabeam_storage::{Location, ObjectCache, Remote, StorageError};

use crate::support::adapters::peft_equivalent;
use crate::support::s3::{Who, S3};
use crate::support::{compare, conformance_dir, fixture, golden, strings, tiny_model_args};

/// Runs `work` with `who`'s credentials in this process's environment (tests run one per
/// process under nextest, so nothing else reads it meanwhile).
fn as_user<T>(s3: &S3, who: Who, work: impl FnOnce() -> T) -> T {
    for (key, value) in s3.env(who) {
        std::env::set_var(key, value);
    }
    work()
}

fn remote(url: &str) -> Remote {
    match Location::parse(url) {
        Ok(Location::Remote(remote)) => remote,
        other => panic!("{url}: {other:?}"),
    }
}

fn block<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(future)
}

#[test]
fn the_store_client_reads_writes_and_names_each_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = S3::start(dir.path());
    let local = dir.path().join("data.jsonl");
    std::fs::write(&local, b"{\"context\": [1], \"completion\": [2]}\n").expect("write");
    s3.put("data/test.jsonl", &local);

    as_user(&s3, Who::Writer, || {
        block(async {
            let object = remote(&s3.url("data/test.jsonl"));
            let (bytes, meta) = object.read(1 << 20).await.expect("read");
            assert_eq!(bytes, std::fs::read(&local).expect("read"));
            assert_eq!(meta.size, bytes.len() as u64);
            assert!(!meta.etag.is_empty(), "S3 gives an ETag");
            let small = object.read(4).await.expect_err("over the bound");
            assert!(matches!(small, StorageError::TooLarge { .. }), "{small}");

            // A multipart upload of 20 MiB (three parts), read back whole.
            let big = dir.path().join("big.bin");
            let content: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
            std::fs::write(&big, &content).expect("write");
            let uploaded = remote(&s3.url("out/big.bin")).upload_file(&big).await.expect("upload");
            assert_eq!(uploaded.size, content.len() as u64);
            let fetched = dir.path().join("fetched.bin");
            remote(&s3.url("out/big.bin")).download(&fetched, 1 << 30, Some(&uploaded.etag)).await.expect("download");
            assert!(std::fs::read(&fetched).expect("read") == content);

            let listed = remote(&s3.url("out")).list().await.expect("list");
            assert_eq!(listed.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["big.bin"]);

            let missing = remote(&s3.url("data/missing.jsonl")).read(1 << 20).await.expect_err("missing");
            assert_eq!(missing.to_string(), "s3://lorabeam-test/data/missing.jsonl: no such object");
        })
    });

    as_user(&s3, Who::WrongSecret, || {
        block(async {
            let denied = remote(&s3.url("data/test.jsonl")).read(1 << 20).await.expect_err("denied");
            let text = denied.to_string();
            assert!(matches!(denied, StorageError::Denied { .. }), "{text}");
            assert!(text.starts_with("s3://lorabeam-test/data/test.jsonl: access denied ("), "{text}");
            assert!(!text.contains("not-the-secret"), "a secret in an error: {text}");
        })
    });

    as_user(&s3, Who::Reader, || {
        block(async {
            let denied = remote(&s3.url("out/probe")).put(b"x".to_vec()).await.expect_err("read-only");
            assert!(matches!(denied, StorageError::Denied { .. }), "{denied}");
        })
    });

    // Credentials as files (a mounted Secret) win over the environment's: the writer's keys in
    // files make a process whose environment holds a wrong secret read again.
    let secret_dir = dir.path().join("object-storage-secret");
    std::fs::create_dir_all(secret_dir.join("..data")).expect("mkdir");
    for (key, value) in s3.env(Who::Writer) {
        if key.starts_with("AWS_ACCESS") || key.starts_with("AWS_SECRET") {
            std::fs::write(secret_dir.join(&key), format!("{value}\n")).expect("write");
        }
    }
    as_user(&s3, Who::WrongSecret, || {
        std::env::set_var(lorabeam_storage::CREDENTIALS_DIR_VAR, &secret_dir);
        let read = block(remote(&s3.url("data/test.jsonl")).read(1 << 20));
        std::env::remove_var(lorabeam_storage::CREDENTIALS_DIR_VAR);
        assert!(read.is_ok(), "the files' credentials are used: {read:?}");
    });

    // The cache: fetched once per ETag; an object replaced after it was listed is `Changed`.
    as_user(&s3, Who::Writer, || {
        block(async {
            let cache = ObjectCache::new(dir.path().join("cache"), 1 << 30);
            let object = remote(&s3.url("data/test.jsonl"));
            let meta = object.head().await.expect("head");
            let objects = [("test.jsonl".to_string(), object.clone(), meta.clone())];
            let first = cache.fetch(object.url(), &objects, 1 << 20).await.expect("fetch");
            assert!(first.fetched);
            let again = cache.fetch(object.url(), &objects, 1 << 20).await.expect("fetch");
            assert!(!again.fetched && again.dir == first.dir);
            std::fs::write(&local, b"{\"context\": [3], \"completion\": [4]}\n").expect("write");
            s3.put("data/test.jsonl", &local);
            let stale = cache.fetch(object.url(), &objects, 1 << 20).await;
            assert!(stale.is_ok(), "the listed version is cached: {stale:?}");
            let gone = ObjectCache::new(dir.path().join("cache2"), 1 << 30);
            let changed = gone.fetch(object.url(), &objects, 1 << 20).await.expect_err("changed");
            assert!(matches!(changed, StorageError::Changed { .. }), "{changed}");
            let now = object.head().await.expect("head");
            assert_ne!(now, meta);
            let fresh = [("test.jsonl".to_string(), object.clone(), now)];
            let refetched = cache.fetch(object.url(), &fresh, 1 << 20).await.expect("fetch");
            assert!(refetched.fetched && refetched.dir != first.dir);
            let text = std::fs::read_to_string(refetched.dir.join("test.jsonl")).expect("read");
            assert!(text.contains("[3]"), "{text}");
        })
    });
}

fn path(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// `lorabeam ARGS` with `who`'s credentials in the child's environment only (this process's
/// stays as it is), its object cache in `cache`.
fn lorabeam_as(s3: &S3, who: Who, cache: &Path, args: &[String]) -> Output {
    let mut all = args.to_vec();
    all.extend(strings(&["--object-cache-dir", &path(cache)]));
    Command::new(env!("CARGO_BIN_EXE_lorabeam")).args(&all).envs(s3.env(who)).output().expect("lorabeam runs")
}

/// `lorabeam run` into `work` with `args`, which must succeed; returns its stderr.
fn run_as(s3: &S3, who: Who, cache: &Path, work: &Path, args: &[String]) -> String {
    let mut all = strings(&["run", "--device", "cpu", "--threads", "1", "--output_file", "predictions.jsonl"]);
    all.extend(strings(&["--work_dir", &path(work)]));
    all.extend_from_slice(args);
    let out = lorabeam_as(s3, who, cache, &all);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        // The server's side of it: the log S3::start writes beside the test's files.
        let log = std::fs::read_to_string(work.with_file_name(format!("moto-{}.log", s3.port))).unwrap_or_default();
        let tail: String = log.chars().rev().take(4000).collect::<Vec<_>>().into_iter().rev().collect();
        panic!("lorabeam {all:?} failed:\n{stderr}\nmoto's log ends:\n{tail}");
    }
    stderr
}

/// The cache's entries (folder names), and each file in them with its size.
fn cache_listing(cache: &Path) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(cache).expect("the cache").flatten() {
        found.push((entry.file_name().to_string_lossy().to_string(), 0));
        for file in std::fs::read_dir(entry.path()).expect("an entry").flatten() {
            let size = file.metadata().expect("metadata").len();
            found.push((
                format!("{}/{}", entry.file_name().to_string_lossy(), file.file_name().to_string_lossy()),
                size,
            ));
        }
    }
    found.sort();
    found
}

/// A golden's flags, as words, and the share of lines that must match it.
fn golden_flags(golden_name: &str) -> (Vec<String>, f64) {
    let (flags, rate) = golden(golden_name);
    (flags.split_whitespace().map(String::from).collect(), rate)
}

/// Every input in the store (the data, the model's config, the base checkpoint, a PEFT adapter
/// folder and a loralib `.pt` adapter, all as s3:// URLs)
/// decodes byte for byte as the same run from local files, and reproduces the f64 golden. A
/// second run fetches nothing: the cache holds the same entries, and the run says no "fetched".
#[test]
fn a_run_with_every_input_in_the_store_matches_the_local_run_and_the_golden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = S3::start(dir.path());
    let data = conformance_dir().join("data/e2e_test_public.jsonl");
    let adapters = dir.path().join("adapters");
    peft_equivalent(&adapters);
    let peft = adapters.join("loralib_equiv");
    s3.put("inputs/test.jsonl", &data);
    s3.put("model/config.json", &fixture("config.json"));
    s3.put("model/base/pytorch_model.bin", &fixture("base_pytorch_model.bin"));
    s3.put_tree("adapters/peft", &peft);
    s3.put("adapters/fixture.pt", &fixture("lora_only.pt"));

    let (flags, rate) = golden_flags("readme-f64");
    let args = |data: String, config: String, base: String, peft: String, loralib: String| {
        let mut args = strings(&["--data", &data, "--model_config", &config, "--base_checkpoint", &base]);
        args.extend(strings(&["--lora_alpha", "32", "--max_rows", "400"]));
        args.extend(strings(&["--adapter", &format!("peft={peft}"), "--adapter", &loralib]));
        args.extend(flags.iter().cloned());
        args
    };
    let from_store = args(
        s3.url("inputs/test.jsonl"),
        s3.url("model/config.json"),
        s3.url("model/base/pytorch_model.bin"),
        s3.url("adapters/peft"),
        s3.url("adapters/fixture.pt"),
    );
    let local_args = args(
        path(&data),
        path(&fixture("config.json")),
        path(&fixture("base_pytorch_model.bin")),
        path(&peft),
        format!("fixture={}", path(&fixture("lora_only.pt"))),
    );
    let cache = dir.path().join("cache");
    let (store_work, local_work) = (dir.path().join("store"), dir.path().join("local"));
    let stderr = run_as(&s3, Who::Writer, &cache, &store_work, &from_store);
    for key in ["model/config.json", "model/base/pytorch_model.bin", "adapters/peft", "adapters/fixture.pt"] {
        let line = format!("fetched {} (", s3.url(key));
        assert!(stderr.contains(&line), "no `{line}` in:\n{stderr}");
    }
    run_as(&s3, Who::Writer, &cache, &local_work, &local_args);
    let golden = conformance_dir().join("golden/readme-f64.jsonl");
    for name in ["peft", "fixture"] {
        let ours = store_work.join(name).join("predictions.jsonl");
        let local = std::fs::read(local_work.join(name).join("predictions.jsonl")).expect("local predictions");
        assert!(std::fs::read(&ours).expect("store predictions") == local, "{name}: the store's run differs");
        eprintln!("{name} adapter from the store against readme-f64: {}", compare(&golden, &ours, rate));
    }

    let before = cache_listing(&cache);
    assert_eq!(before.iter().filter(|(name, _)| !name.contains('/')).count(), 4, "{before:?}");
    let again_work = dir.path().join("again");
    let again = run_as(&s3, Who::Writer, &cache, &again_work, &from_store);
    assert!(!again.contains("fetched"), "the second run fetched again:\n{again}");
    assert_eq!(cache_listing(&cache), before, "the second run changed the cache");
    for name in ["peft", "fixture"] {
        let first = std::fs::read(store_work.join(name).join("predictions.jsonl")).expect("read");
        assert!(std::fs::read(again_work.join(name).join("predictions.jsonl")).expect("read") == first);
    }
}

/// `--init_checkpoint` from the store (the fixture's full LoRA checkpoint) decodes the greedy
/// golden exactly, byte for byte as the same checkpoint read from disk.
#[test]
fn an_init_checkpoint_in_the_store_matches_the_local_run_and_the_golden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = S3::start(dir.path());
    let data = conformance_dir().join("data/e2e_test_public.jsonl");
    s3.put("checkpoints/lora_full.pt", &fixture("lora_full.pt"));
    let (flags, rate) = golden_flags("greedy-f64");
    let args = |checkpoint: String| {
        let mut args = strings(&["--data", &path(&data), "--init_checkpoint", &checkpoint]);
        args.extend(tiny_model_args());
        args.extend(flags.iter().cloned());
        args
    };
    let cache = dir.path().join("cache");
    let (store_work, local_work) = (dir.path().join("store"), dir.path().join("local"));
    let stderr = run_as(&s3, Who::Writer, &cache, &store_work, &args(s3.url("checkpoints/lora_full.pt")));
    let size = std::fs::metadata(fixture("lora_full.pt")).expect("metadata").len();
    let line = format!("fetched {} ({size} bytes)", s3.url("checkpoints/lora_full.pt"));
    assert!(stderr.contains(&line), "no `{line}` in:\n{stderr}");
    run_as(&s3, Who::Writer, &cache, &local_work, &args(path(&fixture("lora_full.pt"))));
    let ours = store_work.join("predictions.jsonl");
    let local = std::fs::read(local_work.join("predictions.jsonl")).expect("local predictions");
    assert!(std::fs::read(&ours).expect("store predictions") == local, "the store's run differs");
    let golden = conformance_dir().join("golden/greedy-f64.jsonl");
    eprintln!("init checkpoint from the store against greedy-f64: {}", compare(&golden, &ours, rate));
}

/// What goes wrong is said with the object's URL: a missing data object, a wrong secret (never
/// printed), a scheme lorabeam does not read, and PEFT folders missing their files.
#[test]
fn store_inputs_fail_with_the_url_and_never_the_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = S3::start(dir.path());
    let cache = dir.path().join("cache");
    s3.put("model/base/pytorch_model.bin", &fixture("config.json"));
    s3.put("adapters/config_only/adapter_config.json", &fixture("config.json"));
    let data = path(&conformance_dir().join("data/e2e_test_public.jsonl"));
    let base = path(&fixture("base_pytorch_model.bin"));
    let fails = |who: Who, extra: &[String]| -> String {
        let mut args = strings(&["run", "--device", "cpu", "--work_dir", &path(&dir.path().join("work"))]);
        args.extend(tiny_model_args());
        args.extend_from_slice(extra);
        let out = lorabeam_as(&s3, who, &cache, &args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{extra:?} succeeded:\n{text}");
        assert!(!text.contains("not-the-secret"), "a secret in the output: {text}");
        text
    };

    let missing = s3.url("inputs/missing.jsonl");
    let text = fails(Who::Writer, &strings(&["--data", &missing, "--init_checkpoint", &base]));
    assert!(text.contains("s3://lorabeam-test/inputs/missing.jsonl: no such object"), "{text}");

    let remote_base = s3.url("model/base/pytorch_model.bin");
    let text = fails(Who::WrongSecret, &strings(&["--data", &data, "--base_checkpoint", &remote_base]));
    assert!(text.contains("s3://lorabeam-test/model/base/pytorch_model.bin: access denied ("), "{text}");

    let text = fails(Who::Writer, &strings(&["--data", "ftp://x/y", "--init_checkpoint", &base]));
    assert!(
        text.contains("ftp://x/y: lorabeam reads local paths and s3://, gs:// or az:// URLs, not ftp://"),
        "{text}"
    );

    // Adapters decode on a bare base: the model flags without --lora_dim.
    let adapter_fails = |adapter: &str| {
        let mut args = strings(&["run", "--device", "cpu", "--work_dir", &path(&dir.path().join("work"))]);
        args.extend(strings(&["--model_config", &path(&fixture("config.json")), "--data", &data]));
        args.extend(strings(&["--base_checkpoint", &base, "--adapter", adapter]));
        let out = lorabeam_as(&s3, Who::Writer, &cache, &args);
        assert!(!out.status.success(), "--adapter {adapter} succeeded");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let text = adapter_fails(&s3.url("adapters/config_only"));
    assert!(
        text.contains(
            "adapters/config_only: a PEFT adapter folder with adapter_config.json but neither \
             adapter_model.safetensors nor adapter_model.bin"
        ),
        "{text}"
    );
    let text = adapter_fails(&s3.url("adapters/nothing"));
    assert!(text.contains("s3://lorabeam-test/adapters/nothing: no such object, and no PEFT adapter folder"), "{text}");
}
