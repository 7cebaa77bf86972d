//! The process around the engine: glibc's allocator settings and libgomp's wait policy (both
//! read from the environment only while the process starts), the CPUs the process may use, and
//! what the process has cost so far (CPU time, page faults).

use std::ffi::OsString;

/// `off` leaves glibc's allocator and libgomp's wait policy at their defaults.
pub const TUNING_ENV: &str = "LORABEAM_PROCESS_TUNING";
/// Set on the re-executed process so that it does not re-execute again.
const TUNED_MARK: &str = "LORABEAM_PROCESS_TUNED";

/// glibc's malloc serves requests above its mmap threshold (at most 32 MiB by default, raised
/// dynamically) with a fresh `mmap` and gives them back with `munmap` when freed: every decode
/// step's logits (rows × 50,257 f32, 64 MB at 320 rows), their log-softmax and the beam scores
/// were mapped, faulted in page by page and unmapped again. With the threshold and the trim
/// threshold at 4 GiB they are carved from the heap and reused: memory the process freed stays
/// with it (its resident size keeps its peak) instead of going back to the kernel.
const MALLOC_TUNABLES: &str = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296";

/// What [`tune_process`] found: whether the settings are in force in this process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tuning {
    /// glibc's malloc keeps large buffers in the heap (our tunables, or the user's own).
    pub malloc_in_heap: bool,
    /// libgomp's wait policy, `OMP_WAIT_POLICY` as the process started with it (None: libgomp's
    /// default, which spins for a while before sleeping).
    pub omp_wait_policy: Option<String>,
}

impl std::fmt::Display for Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wait = self.omp_wait_policy.as_deref().unwrap_or("libgomp default").to_ascii_lowercase();
        let malloc = if self.malloc_in_heap { "large buffers in the heap" } else { "glibc default" };
        write!(f, "wait policy {wait}, malloc {malloc}")
    }
}

/// Called first thing in `main`, before any libtorch call: when the environment lacks
/// lorabeam's allocator settings (`GLIBC_TUNABLES`) or a wait policy (`OMP_WAIT_POLICY`),
/// re-executes the same binary with the same arguments (and process id) with them added.
/// glibc and libgomp read these variables while the process loads, before `main`, so setting
/// them later would change nothing. Settings the user gave are kept; `LORABEAM_PROCESS_TUNING=off`
/// keeps glibc's and libgomp's defaults. Returns (when it does not exec) what is in force.
pub fn tune_process() -> Tuning {
    let env = |key: &str| std::env::var_os(key);
    let plan = plan_tuning(
        env(TUNING_ENV).as_deref().and_then(|v| v.to_str()),
        env(TUNED_MARK).is_some(),
        env("GLIBC_TUNABLES").as_deref().and_then(|v| v.to_str()),
        env("OMP_WAIT_POLICY").as_deref().and_then(|v| v.to_str()),
    );
    if !plan.set.is_empty() {
        if let Err(err) = reexec(&plan.set) {
            // Decoding still works, only slower: say so and go on.
            eprintln!(
                "lorabeam: could not re-execute with the allocator and thread settings ({err}); going on without"
            );
            return Tuning { malloc_in_heap: plan.user_malloc, omp_wait_policy: env_string("OMP_WAIT_POLICY") };
        }
    }
    plan.in_force
}

fn env_string(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// What to add to the environment, and what will be in force once it is.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    set: Vec<(&'static str, String)>,
    in_force: Tuning,
    /// The user's own GLIBC_TUNABLES already keeps large buffers in the heap.
    user_malloc: bool,
}

/// Decides from the environment's values alone (pure, so tested without exec).
fn plan_tuning(switch: Option<&str>, tuned: bool, tunables: Option<&str>, wait: Option<&str>) -> Plan {
    let user_malloc = tunables.is_some_and(|t| t.contains("glibc.malloc.mmap_threshold"));
    let off = switch.is_some_and(|v| v.eq_ignore_ascii_case("off") || v == "0");
    let current = Tuning { malloc_in_heap: user_malloc, omp_wait_policy: wait.map(str::to_string) };
    if off || tuned {
        return Plan { set: Vec::new(), in_force: current, user_malloc };
    }
    let mut set = Vec::new();
    if !user_malloc {
        let value = match tunables {
            Some(existing) if !existing.is_empty() => format!("{existing}:{MALLOC_TUNABLES}"),
            _ => MALLOC_TUNABLES.to_string(),
        };
        set.push(("GLIBC_TUNABLES", value));
    }
    let wait = wait.map(str::to_string).unwrap_or_else(|| {
        // Idle OpenMP threads sleep at once instead of spinning: on a machine shared with
        // other work a spinning thread takes the core the thread it waits for needs.
        set.push(("OMP_WAIT_POLICY", "PASSIVE".to_string()));
        "PASSIVE".to_string()
    });
    if !set.is_empty() {
        set.push((TUNED_MARK, "1".to_string()));
    }
    Plan { set, in_force: Tuning { malloc_in_heap: true, omp_wait_policy: Some(wait) }, user_malloc }
}

/// Replaces this process with the same binary and arguments, `set` added to its environment.
/// Returns only on failure.
fn reexec(set: &[(&'static str, String)]) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from(&exe));
    let err = std::process::Command::new(exe).arg0(arg0).args(args).envs(set.iter().map(|(k, v)| (k, v))).exec();
    Err(err)
}

/// libtorch intra-op threads when `--threads` is 0: the CPUs this process may run on, as Rust's
/// `available_parallelism` counts them on Linux (the scheduler affinity mask, lowered by a
/// cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us` quota), where libgomp alone would start one
/// thread per CPU of the affinity mask: 64 in a pod limited to 4 CPUs on a 64-core node.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// What the process has cost since it started, from `/proc/self/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessUsage {
    pub user_seconds: f64,
    pub system_seconds: f64,
    pub minor_faults: u64,
}

impl ProcessUsage {
    /// None where `/proc` is not mounted or unreadable.
    pub fn read() -> Option<ProcessUsage> {
        parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// The cost since `earlier`.
    pub fn since(&self, earlier: &ProcessUsage) -> ProcessUsage {
        ProcessUsage {
            user_seconds: self.user_seconds - earlier.user_seconds,
            system_seconds: self.system_seconds - earlier.system_seconds,
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
        }
    }
}

/// Clock ticks of `/proc/<pid>/stat`: USER_HZ, 100 on every Linux architecture lorabeam builds for.
const USER_HZ: f64 = 100.0;

/// Fields 10 (minflt), 14 (utime) and 15 (stime) of proc(5)'s stat line; the command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Option<ProcessUsage> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(ProcessUsage {
        minor_faults: field(10)?,
        user_seconds: field(14)? as f64 / USER_HZ,
        system_seconds: field(15)? as f64 / USER_HZ,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_process_gets_both_settings_and_the_mark() {
        let plan = plan_tuning(None, false, None, None);
        let keys: Vec<_> = plan.set.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["GLIBC_TUNABLES", "OMP_WAIT_POLICY", TUNED_MARK]);
        assert_eq!(plan.set[0].1, MALLOC_TUNABLES);
        assert_eq!(plan.in_force, Tuning { malloc_in_heap: true, omp_wait_policy: Some("PASSIVE".into()) });
    }

    #[test]
    fn the_users_settings_are_kept_and_other_tunables_extended() {
        let plan = plan_tuning(None, false, Some("glibc.malloc.arena_max=2"), Some("ACTIVE"));
        assert_eq!(plan.set[0], ("GLIBC_TUNABLES", format!("glibc.malloc.arena_max=2:{MALLOC_TUNABLES}")));
        assert_eq!(plan.set.len(), 2, "no wait policy over the user's: {:?}", plan.set);
        assert_eq!(plan.in_force.omp_wait_policy.as_deref(), Some("ACTIVE"));
        let own = plan_tuning(None, false, Some("glibc.malloc.mmap_threshold=1"), Some("PASSIVE"));
        assert!(own.set.is_empty() && own.in_force.malloc_in_heap);
    }

    #[test]
    fn off_or_already_tuned_changes_nothing() {
        for plan in [plan_tuning(Some("off"), false, None, None), plan_tuning(None, true, None, None)] {
            assert!(plan.set.is_empty());
            assert_eq!(plan.in_force, Tuning { malloc_in_heap: false, omp_wait_policy: None });
        }
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 1234 0 5 0 250 37 0 0 20 0 3 0 100 0 0";
        let usage = parse_stat(line).expect("parses");
        assert_eq!(usage, ProcessUsage { minor_faults: 1234, user_seconds: 2.5, system_seconds: 0.37 });
        assert!(parse_stat("42 no parenthesis").is_none());
        assert!(ProcessUsage::read().is_some());
    }
}
