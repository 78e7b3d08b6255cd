//! Who may have an agent's process driver run an entrypoint on the agent's host (`--allow-exec`).
//! The agent enforces the program list at launch; the gateway refuses at create what no agent
//! would run, naming the rule.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "allow", content = "programs")]
pub enum ExecPolicy {
    /// Any API user's artifact: the local administrator and the users it made (`nucleus dev`'s default).
    #[default]
    Anyone,
    /// Only workloads the administrator creates.
    Administrators,
    /// Only these programs: an absolute path matches exactly, a bare name matches the file name of
    /// the entrypoint's program.
    Programs(Vec<String>),
}

impl ExecPolicy {
    /// `anyone`, `admins`, or a comma-separated list of programs.
    pub fn parse(text: &str) -> Result<ExecPolicy, String> {
        match text.trim() {
            "" => Err("--allow-exec needs `anyone`, `admins` or a comma-separated list of programs".to_owned()),
            "anyone" => Ok(ExecPolicy::Anyone),
            "admins" => Ok(ExecPolicy::Administrators),
            list => Ok(ExecPolicy::Programs(list.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect())),
        }
    }

    /// Whether `program` (an entrypoint's first word) may run for a workload created by an
    /// administrator (`by_admin`) or a user; when not, the rule that refuses it.
    pub fn allows(&self, program: &str, by_admin: bool) -> Result<(), String> {
        match self {
            ExecPolicy::Anyone => Ok(()),
            ExecPolicy::Administrators if by_admin => Ok(()),
            ExecPolicy::Administrators => Err("only the administrator's workloads run commands on it (--allow-exec admins)".to_owned()),
            ExecPolicy::Programs(programs) => {
                let file_name = program.rsplit('/').next().unwrap_or(program);
                let listed = programs.iter().any(|p| if p.contains('/') { p == program } else { p == file_name && !program.is_empty() });
                if listed { Ok(()) } else { Err(format!("it runs only {} (--allow-exec), not `{program}`", programs.join(", "))) }
            }
        }
    }
}

impl std::str::FromStr for ExecPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<ExecPolicy, String> {
        ExecPolicy::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_match_by_path_or_file_name() {
        let policy = ExecPolicy::parse("python3, /opt/model/serve").unwrap();
        assert!(policy.allows("python3", false).is_ok());
        assert!(policy.allows("/usr/bin/python3", false).is_ok());
        assert!(policy.allows("/opt/model/serve", false).is_ok());
        let refused = policy.allows("/opt/other/serve", false).unwrap_err();
        assert!(refused.contains("not `/opt/other/serve`") && refused.contains("--allow-exec"), "{refused}");
        assert!(policy.allows("sh", true).is_err(), "the list binds administrators too");
    }

    #[test]
    fn admins_only_and_anyone() {
        let admins = ExecPolicy::parse("admins").unwrap();
        assert!(admins.allows("sh", true).is_ok());
        assert!(admins.allows("sh", false).unwrap_err().contains("admins"));
        assert!(ExecPolicy::parse("anyone").unwrap().allows("anything", false).is_ok());
        assert!(ExecPolicy::parse(" ").is_err());
    }
}
