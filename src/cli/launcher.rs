//! The launcher flags of the reference's `gpu.py` (`add_gpu_params`), which gpt2_beam.py takes
//! from `torch.distributed.launch`: accepted so its commands run unchanged, then ignored, since
//! `lorabeam run` is one process on one device (`--device N` picks it).

use clap::Args;

#[derive(Debug, Clone, Default, Args)]
pub struct LauncherArgs {
    /// gpu.py's platform (local, azure, philly, k8s): ignored, lorabeam run is one process.
    #[arg(long, env = "LORABEAM_PLATFORM")]
    pub platform: Option<String>,
    /// torch.distributed's local rank: ignored (use --device N to pick a GPU).
    #[arg(long = "local_rank", env = "LORABEAM_LOCAL_RANK", allow_negative_numbers = true)]
    pub local_rank: Option<i64>,
    /// torch.distributed's global rank: ignored.
    #[arg(long, env = "LORABEAM_RANK", allow_negative_numbers = true)]
    pub rank: Option<i64>,
    /// torch.distributed's world size: ignored, lorabeam run decodes every line itself.
    #[arg(long = "world_size", env = "LORABEAM_WORLD_SIZE")]
    pub world_size: Option<u64>,
    /// gpu.py's random seed: ignored, beam search draws no random numbers.
    #[arg(long = "random_seed", env = "LORABEAM_RANDOM_SEED", allow_negative_numbers = true)]
    pub random_seed: Option<i64>,
}

impl LauncherArgs {
    /// The launcher flags that were given, as `--name value`, to say they are ignored.
    pub fn given(&self) -> Vec<String> {
        let mut given = Vec::new();
        let mut note = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                given.push(format!("--{name} {value}"));
            }
        };
        note("platform", self.platform.clone());
        note("local_rank", self.local_rank.map(|v| v.to_string()));
        note("rank", self.rank.map(|v| v.to_string()));
        note("world_size", self.world_size.map(|v| v.to_string()));
        note("random_seed", self.random_seed.map(|v| v.to_string()));
        given
    }

    /// Says on stderr which launcher flags were ignored, if any.
    pub fn note_ignored(&self) {
        let given = self.given();
        if !given.is_empty() {
            crate::errln!(
                "note: ignoring gpu.py's launcher flags ({}): lorabeam run is one process on one device (--device)",
                given.join(", ")
            );
        }
    }
}
