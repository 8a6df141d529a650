//! `zio-run --setup`: the one-time system setup that lets chosen service
//! users open `/dev/userfaultfd`, and its undoing.
//!
//! With `vm.unprivileged_userfaultfd=0` (the usual setting) only privileged
//! processes may call `userfaultfd(2)`; the library then opens
//! `/dev/userfaultfd`, which the kernel allows to anyone who can open the
//! device node. The setup gives that node to a `zio` group (mode 0660, kept
//! across reboots by a udev rule) and adds the named users to the group.
//! What it changed is written to a state file, so `--undo` reverses exactly
//! that: a group or device mode that was there before is left as it was.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{exit, Command, Stdio};

/// The group the setup creates and gives the device to.
pub const GROUP: &str = "zio";

const DEVICE: &str = "/dev/userfaultfd";
const RULE: &str = "/etc/udev/rules.d/60-zio-userfaultfd.rules";
const STATE: &str = "/var/lib/zio/setup";

const GRANT: &str = "\
members of group zio may open /dev/userfaultfd: their processes can make the kernel
wait on page faults in their own memory, including faults the kernel takes while it
copies to or from that memory. Distributions turn vm.unprivileged_userfaultfd off
because holding the kernel still that way helps exploit kernel races. Add the service
users zio should speed up (zio-run --setup --user NAME), not everyone.";

/// Whether `dev` (the device's metadata) is opened to the zio group.
pub fn device_is_granted(dev: &std::fs::Metadata) -> bool {
    dev.mode() & 0o060 == 0o060 && group_members().is_some_and(|(gid, _)| gid == dev.gid())
}

/// What `--setup` was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// Reverse the setup (of only these users, if any are named).
    pub undo: bool,
    /// Users to add to (or, with `undo`, remove from) the group.
    pub users: Vec<String>,
}

impl Request {
    /// A request for these users (each once, in order), checked.
    pub fn new(undo: bool, names: &[String]) -> Result<Request, String> {
        let mut req = Request {
            undo,
            users: Vec::new(),
        };
        for name in names {
            if !valid_name(name) {
                return Err(format!("{name:?} is not a user name"));
            }
            if !req.users.iter().any(|u| u == name) {
                req.users.push(name.to_string());
            }
        }
        Ok(req)
    }
}

/// A name `useradd` would accept (and nothing a shell or `/etc/group`
/// would read as something else).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'$'))
}

/// What the setup found before it changed anything, kept for `--undo`.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct State {
    /// The setup created the group (so undo deletes it).
    pub group_created: bool,
    /// The device's mode, owner and group before the setup.
    pub mode: u32,
    /// Owner before the setup.
    pub uid: u32,
    /// Group before the setup.
    pub gid: u32,
    /// The setup created the udev rules directory (a system without udev).
    pub rules_dir_created: bool,
    /// Users the setup added to a group that existed before it.
    pub users: Vec<String>,
}

impl State {
    /// The state file's text.
    pub fn render(&self) -> String {
        let mut s = format!(
            "# written by zio-run --setup, read by zio-run --setup --undo\n\
             group-created {}\ndevice-mode {:o}\ndevice-uid {}\ndevice-gid {}\n\
             rules-dir-created {}\n",
            u8::from(self.group_created),
            self.mode,
            self.uid,
            self.gid,
            u8::from(self.rules_dir_created)
        );
        for u in &self.users {
            s.push_str(&format!("user {u}\n"));
        }
        s
    }

    /// Reads a state file's text; `None` if it is not one.
    pub fn parse(text: &str) -> Option<State> {
        let mut st = State::default();
        let mut seen = 0;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (k, v) = line.split_once(' ')?;
            match k {
                "group-created" => st.group_created = v == "1",
                "device-mode" => st.mode = u32::from_str_radix(v, 8).ok()?,
                "device-uid" => st.uid = v.parse().ok()?,
                "device-gid" => st.gid = v.parse().ok()?,
                "rules-dir-created" => st.rules_dir_created = v == "1",
                "user" if valid_name(v) => {
                    st.users.push(v.to_string());
                    continue;
                }
                _ => return None,
            }
            seen += 1;
        }
        (seen == 5).then_some(st)
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("zio-run --setup: {msg}");
    exit(1);
}

/// Runs a system tool; fails with its own message if it does not succeed.
fn tool(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}", args[0])));
    if !out.status.success() {
        fail(&format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
}

/// A `getent` database entry's fields, or `None` if there is none.
fn getent(db: &str, key: &str) -> Option<Vec<String>> {
    let out = Command::new("getent").args([db, key]).output().ok()?;
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .to_string();
    out.status
        .success()
        .then(|| line.split(':').map(str::to_string).collect())
}

fn group_members() -> Option<(u32, Vec<String>)> {
    let g = getent("group", GROUP)?;
    let gid = g.get(2)?.parse().ok()?;
    let members = g
        .get(3)
        .map(|m| m.split(',').filter(|s| !s.is_empty()).map(str::to_string))
        .into_iter()
        .flatten()
        .collect();
    Some((gid, members))
}

/// `zio-run --setup ARGS`: does what was asked and exits.
pub fn main(req: Request) -> ! {
    if !nix::unistd::geteuid().is_root() {
        fail("needs root (it changes a group, a device node and a udev rule)");
    }
    for u in &req.users {
        if getent("passwd", u).is_none() {
            fail(&format!("no user {u} on this system"));
        }
    }
    if req.undo {
        undo(&req.users)
    } else {
        setup(&req.users)
    }
}

fn read_state() -> Option<State> {
    let text = std::fs::read_to_string(STATE).ok()?;
    State::parse(&text).or_else(|| fail(&format!("{STATE} is not a zio setup state file")))
}

fn write_state(st: &State) {
    let p = Path::new(STATE);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", dir.display())));
    }
    std::fs::write(p, st.render()).unwrap_or_else(|e| fail(&format!("cannot write {STATE}: {e}")));
}

fn set_device(mode: u32, uid: u32, gid: u32) {
    std::os::unix::fs::chown(DEVICE, Some(uid), Some(gid))
        .unwrap_or_else(|e| fail(&format!("cannot change the owner of {DEVICE}: {e}")));
    std::fs::set_permissions(DEVICE, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| fail(&format!("cannot change the mode of {DEVICE}: {e}")));
}

fn reload_udev() {
    // Where udev runs, it reads the rule at the next boot anyway; reloading
    // now only spares a reboot's wait. Containers have no udev.
    let _ = Command::new("udevadm")
        .args(["control", "--reload-rules"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn setup(users: &[String]) -> ! {
    let meta = std::fs::metadata(DEVICE).unwrap_or_else(|e| {
        fail(&format!(
            "{DEVICE}: {e} (it needs Linux 6.1 or later, built with CONFIG_USERFAULTFD)"
        ))
    });
    let mut st = read_state().unwrap_or_else(|| State {
        group_created: group_members().is_none(),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        rules_dir_created: !Path::new(RULE).parent().is_some_and(Path::exists),
        users: Vec::new(),
    });
    if group_members().is_none() {
        tool(&["groupadd", "--system", GROUP]);
        println!("zio-run: created group {GROUP}");
    }
    let (gid, members) = group_members().unwrap_or_else(|| fail("group zio did not appear"));
    write_state(&st);

    let rule = PathBuf::from(RULE);
    if let Some(dir) = rule.parent() {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| fail(&format!("cannot create {}: {e}", dir.display())));
    }
    std::fs::write(
        &rule,
        "# zio: members of group zio may open /dev/userfaultfd (zio-run --setup).\n\
         KERNEL==\"userfaultfd\", GROUP=\"zio\", MODE=\"0660\"\n",
    )
    .unwrap_or_else(|e| fail(&format!("cannot write {RULE}: {e}")));
    reload_udev();
    set_device(0o660, 0, gid);
    println!(
        "zio-run: {DEVICE} now belongs to group {GROUP}, mode 0660 (kept across reboots by {RULE})"
    );

    for u in users {
        if members.iter().any(|m| m == u) {
            println!("zio-run: {u} is already in group {GROUP}");
            continue;
        }
        tool(&["gpasswd", "--add", u, GROUP]);
        if !st.group_created {
            st.users.push(u.clone());
            write_state(&st);
        }
        println!("zio-run: added {u} to group {GROUP} (for processes started from now on)");
    }
    if users.is_empty() && members.is_empty() {
        println!("zio-run: no user is in group {GROUP} yet: zio-run --setup --user NAME");
    }
    println!("\n{GRANT}");
    exit(0)
}

fn undo(users: &[String]) -> ! {
    let Some(mut st) = read_state() else {
        println!("zio-run: no zio setup to undo ({STATE} does not exist)");
        exit(0)
    };
    let members = group_members().map(|(_, m)| m).unwrap_or_default();
    if !users.is_empty() {
        for u in users {
            if members.iter().any(|m| m == u) {
                tool(&["gpasswd", "--delete", u, GROUP]);
                println!("zio-run: removed {u} from group {GROUP}");
            } else {
                println!("zio-run: {u} is not in group {GROUP}");
            }
        }
        st.users.retain(|u| !users.contains(u));
        write_state(&st);
        exit(0)
    }
    let _ = std::fs::remove_file(RULE);
    reload_udev();
    if Path::new(DEVICE).exists() {
        set_device(st.mode, st.uid, st.gid);
        println!(
            "zio-run: {DEVICE} restored to uid {} gid {} mode {:04o}; removed {RULE}",
            st.uid, st.gid, st.mode
        );
    }
    if st.group_created {
        if group_members().is_some() {
            tool(&["groupdel", GROUP]);
        }
        println!("zio-run: deleted group {GROUP}");
    } else {
        for u in st.users.iter().filter(|u| members.contains(u)) {
            tool(&["gpasswd", "--delete", u, GROUP]);
            println!("zio-run: removed {u} from group {GROUP}");
        }
    }
    if st.rules_dir_created {
        // The rules directory and, on a system without udev, its parent:
        // each only if empty.
        for dir in Path::new(RULE).ancestors().skip(1).take(2) {
            let _ = std::fs::remove_dir(dir);
        }
    }
    std::fs::remove_file(STATE).unwrap_or_else(|e| fail(&format!("cannot remove {STATE}: {e}")));
    if let Some(dir) = Path::new(STATE).parent() {
        // Only if empty: nothing else of anyone's is removed.
        let _ = std::fs::remove_dir(dir);
    }
    exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_once_each_and_no_others() {
        let names: Vec<String> = ["postgres", "www-data", "redis", "redis"]
            .iter()
            .map(|n| n.to_string())
            .collect();
        let r = Request::new(false, &names).unwrap();
        assert_eq!(r.users, ["postgres", "www-data", "redis"]);
        for bad in ["", "-rf", "a:b"] {
            assert!(Request::new(false, &[bad.to_string()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn state_round_trips_and_rejects_other_files() {
        let st = State {
            group_created: false,
            mode: 0o600,
            uid: 0,
            gid: 0,
            rules_dir_created: true,
            users: vec!["postgres".into()],
        };
        assert_eq!(State::parse(&st.render()), Some(st));
        assert_eq!(State::parse("root:x:0:0\n"), None);
        assert_eq!(State::parse("device-mode 600\n"), None);
    }
}
