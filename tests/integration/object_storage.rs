//! Object storage against a real S3-compatible server (moto, started and stopped by each test,
//! authentication on): the store client's reads, writes and listings, and the three errors a
//! user must tell apart (no such object, denied credential, an object that changed under us).

use lorabeam_storage::{Location, ObjectCache, Remote, StorageError};

use crate::support::s3::{Who, S3};

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
