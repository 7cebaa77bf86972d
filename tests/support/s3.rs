//! A real S3-compatible server for the object-storage tests: `moto[server]` (installed into the
//! venv by scripts/setup.sh) on a free loopback port, started by the test and killed when its
//! guard drops. Authentication is on: after the set-up's first requests (the bucket, two IAM
//! users and their keys), every request must be signed by a known key that its policy allows,
//! as on AWS. The test's own uploads and downloads go through boto3, not through lorabeam.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::cluster::{wait_until, Process};

pub const BUCKET: &str = "lorabeam-test";
/// The set-up's unauthenticated requests: create_bucket, then create_user, put_user_policy and
/// create_access_key for each of the three users.
const SETUP_REQUESTS: usize = 10;

/// Whose credentials a process gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// s3:* on the bucket.
    Writer,
    /// Reads and listings only (s3:Get*, s3:List*, s3:Head*).
    Reader,
    /// The writer's key id with a wrong secret: every request is refused (SignatureDoesNotMatch).
    WrongSecret,
}

pub struct S3 {
    pub port: u16,
    _process: Process,
    writer: (String, String),
    reader: (String, String),
    /// iam:* only: takes the writer's rights away mid-test.
    admin: (String, String),
}

fn python() -> PathBuf {
    PathBuf::from(std::env::var_os("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|| "python3".into()))
}

const SETUP: &str = r#"
import json, sys, boto3
endpoint, bucket = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
boto3.client("s3", **kw).create_bucket(Bucket=bucket)
iam = boto3.client("iam", **kw)
for user, actions in (("writer", ["s3:*"]), ("reader", ["s3:Get*", "s3:List*", "s3:Head*"]), ("admin", ["iam:*"])):
    iam.create_user(UserName=user)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="lorabeam", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    print(key["AccessKeyId"], key["SecretAccessKey"])
"#;

/// boto3 as the writer: `put KEY FILE`, `get KEY FILE`, `delete KEY`, `list PREFIX`.
const OPS: &str = r#"
import sys, boto3
endpoint, bucket, key_id, secret, op, key = sys.argv[1:7]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key_id, aws_secret_access_key=secret)
if op == "put":
    s3.upload_file(sys.argv[7], bucket, key)
elif op == "get":
    s3.download_file(bucket, key, sys.argv[7])
elif op == "delete":
    s3.delete_object(Bucket=bucket, Key=key)
elif op == "list":
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        for item in page.get("Contents", []):
            print(item["Key"])
"#;

impl S3 {
    /// Starts moto on a free port, with the bucket and the two users made.
    pub fn start(dir: &Path) -> Self {
        let port = free_port();
        let mut command = Command::new(python());
        command
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_REQUESTS.to_string())
            .stdout(std::process::Stdio::null());
        let process = Process::spawn(command, dir.join(format!("moto-{port}.log")));
        wait_until("moto to listen", Duration::from_secs(60), || TcpStream::connect(("127.0.0.1", port)).is_ok());
        let endpoint = format!("http://127.0.0.1:{port}");
        let out = Command::new(python()).args(["-c", SETUP, &endpoint, BUCKET]).output().expect("python runs");
        assert!(out.status.success(), "moto set-up failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let keys: Vec<(String, String)> =
            text.lines().filter_map(|line| line.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string()))).collect();
        assert_eq!(keys.len(), 3, "set-up printed {text}");
        Self { port, _process: process, writer: keys[0].clone(), reader: keys[1].clone(), admin: keys[2].clone() }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `s3://lorabeam-test/KEY`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{BUCKET}/{key}")
    }

    /// The environment a lorabeam process needs to reach the server as `who` (the variables
    /// users set for any S3-compatible store).
    pub fn env(&self, who: Who) -> Vec<(String, String)> {
        let (id, secret) = match who {
            Who::Writer => self.writer.clone(),
            Who::Reader => self.reader.clone(),
            Who::WrongSecret => (self.writer.0.clone(), "not-the-secret".to_string()),
        };
        vec![
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), id),
            ("AWS_SECRET_ACCESS_KEY".into(), secret),
        ]
    }

    fn op(&self, args: &[&str]) -> String {
        let mut command = Command::new(python());
        command.args(["-c", OPS, &self.endpoint(), BUCKET, &self.writer.0, &self.writer.1]).args(args);
        let out = command.output().expect("python runs");
        assert!(out.status.success(), "boto3 {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Takes the writer's policy away: its requests are denied from now on (credentials revoked).
    pub fn revoke_writer(&self) {
        let script = r#"
import sys, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
iam.delete_user_policy(UserName="writer", PolicyName="lorabeam")
"#;
        let out = Command::new(python())
            .args(["-c", script, &self.endpoint(), &self.admin.0, &self.admin.1])
            .output()
            .expect("python runs");
        assert!(out.status.success(), "revoking the writer failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn put(&self, key: &str, file: &Path) {
        self.op(&["put", key, file.to_str().expect("utf-8 path")]);
    }

    /// Uploads every file under `dir` as `prefix/relative path`.
    pub fn put_tree(&self, prefix: &str, dir: &Path) {
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let key = format!("{}/{name}", prefix.trim_end_matches('/'));
            if entry.path().is_dir() {
                self.put_tree(&key, &entry.path());
            } else {
                self.put(&key, &entry.path());
            }
        }
    }

    pub fn get(&self, key: &str, file: &Path) {
        self.op(&["get", key, file.to_str().expect("utf-8 path")]);
    }

    pub fn delete(&self, key: &str) {
        self.op(&["delete", key, ""]);
    }

    /// The keys under `prefix`, sorted as S3 lists them.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.op(&["list", prefix]).lines().map(str::to_string).collect()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}
