//! The Docker runtime and the front against a real engine (`scripts/install-docker`).
//!
//! Images cannot be pulled here: the tests import `cfa-test/busybox:1` (a static busybox with
//! its applets, a `/www` page and a `/data` directory owned by 65532) from the host's
//! `/bin/busybox` (Debian's `busybox-static`). Without an engine they print one line and pass,
//! except under `CI=true`, where they fail.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use coolify_sandbox::front::Front;
use coolify_sandbox::runtime::docker::{
    ContainerState, DeleteFlags, Deployment, DeploymentFile, DockerError, DockerRuntime,
    DockerRuntimeConfig, LogsError,
};

const TEST_IMAGE: &str = "cfa-test/busybox:1";
const DEFAULT_DOCKER_HOST: &str = "unix:///run/cfa-docker/docker.sock";

const KEEP_VOLUMES: DeleteFlags = DeleteFlags {
    delete_volumes: false,
    delete_connected_networks: true,
    delete_configurations: true,
    docker_cleanup: false,
};
const DELETE_EVERYTHING: DeleteFlags = DeleteFlags {
    delete_volumes: true,
    delete_connected_networks: true,
    delete_configurations: true,
    docker_cleanup: true,
};

/// One test's runtime, work directory and service uuids; removes what it started when dropped.
struct Fixture {
    runtime: DockerRuntime,
    docker_host: String,
    work: tempfile::TempDir,
    service_uuids: Vec<String>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Leftovers of a failed test must not pile up on a shared engine.
        for service_uuid in &self.service_uuids {
            let _ignored = docker_cli(
                &self.docker_host,
                &["compose", "-p", service_uuid, "down", "-v", "-t", "1"],
            );
            let _ignored = docker_cli(&self.docker_host, &["network", "rm", service_uuid]);
        }
    }
}

impl Fixture {
    fn new_service_uuid(&mut self, tag: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let service_uuid = format!("cfa-test-{tag}-{}-{nanos:x}", std::process::id());
        self.service_uuids.push(service_uuid.clone());
        service_uuid
    }

    fn volume_exists(&self, volume_name: &str) -> bool {
        docker_cli(&self.docker_host, &["volume", "inspect", volume_name]).is_ok()
    }

    fn network_exists(&self, network_name: &str) -> bool {
        docker_cli(&self.docker_host, &["network", "inspect", network_name]).is_ok()
    }

    async fn states_of(&self, service_uuid: &str) -> Vec<ContainerState> {
        let states = self.runtime.container_states().await.expect("container_states");
        states.into_iter().filter(|state| state.service_uuid == service_uuid).collect()
    }

    /// Polls until `done` holds for the service's containers (at most `limit`).
    async fn wait_for_states(
        &self,
        service_uuid: &str,
        limit: Duration,
        done: impl Fn(&[ContainerState]) -> bool,
    ) -> Vec<ContainerState> {
        let started = Instant::now();
        loop {
            let states = self.states_of(service_uuid).await;
            if done(&states) {
                return states;
            }
            assert!(started.elapsed() < limit, "states never got there: {states:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[expect(clippy::print_stderr, reason = "the one line saying why a test did nothing")]
async fn fixture_or_skip() -> Option<Fixture> {
    let docker_host =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| DEFAULT_DOCKER_HOST.to_owned());
    let work = tempfile::tempdir().expect("temporary directory");
    let config = DockerRuntimeConfig {
        docker_host: Some(docker_host.clone()),
        work_dir: work.path().join("services"),
        backup_dir: work.path().join("backups"),
        proxy_network: "cfa-test-coolify".to_owned(),
    };
    let runtime = match DockerRuntime::connect(config).await {
        Ok(runtime) => runtime,
        Err(error @ (DockerError::Unreachable { .. } | DockerError::Timeout { .. }))
            if std::env::var("CI").as_deref() != Ok("true") =>
        {
            let _unused = error;
            eprintln!("skipping: no Docker engine (run scripts/install-docker)");
            return None;
        }
        Err(error) => panic!("the Docker runtime did not connect: {error}"),
    };
    test_image(&docker_host);
    Some(Fixture { runtime, docker_host, work, service_uuids: Vec::new() })
}

fn docker_cli(docker_host: &str, arguments: &[&str]) -> Result<String, String> {
    let output = Command::new("docker")
        .args(arguments)
        .env("DOCKER_HOST", docker_host)
        .output()
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Imports the test image once per test process, unless the engine already has it.
fn test_image(docker_host: &str) {
    static IMPORTED: OnceLock<()> = OnceLock::new();
    IMPORTED.get_or_init(|| {
        if docker_cli(docker_host, &["image", "inspect", TEST_IMAGE]).is_ok() {
            return;
        }
        let busybox = Path::new("/bin/busybox");
        assert!(busybox.exists(), "no /bin/busybox: apt-get install busybox-static");
        let applets = Command::new(busybox).arg("--list").output().expect("busybox --list");
        let directory = tempfile::tempdir().expect("temporary directory");
        let rootfs = directory.path().join("rootfs.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&rootfs).expect("rootfs.tar"));
        let mut append = |path: &str,
                          kind: tar::EntryType,
                          mode: u32,
                          owner: u64,
                          data: &[u8],
                          link: Option<&str>| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_uid(owner);
            header.set_gid(owner);
            header.set_size(data.len() as u64);
            if let Some(link) = link {
                header.set_link_name(link).expect("link name");
            }
            builder.append_data(&mut header, path, data).expect("tar entry");
        };
        for directory in ["bin/", "tmp/", "www/"] {
            append(directory, tar::EntryType::Directory, 0o1777, 0, &[], None);
        }
        append("data/", tar::EntryType::Directory, 0o755, 65532, &[], None);
        append("www/index.html", tar::EntryType::Regular, 0o644, 0, b"hello from busybox\n", None);
        let mut program = Vec::new();
        std::fs::File::open(busybox)
            .and_then(|mut file| file.read_to_end(&mut program))
            .expect("read busybox");
        // `FROM scratch` has no loader: Debian's dynamic `busybox` package would not run.
        assert!(
            !has_program_interpreter(&program),
            "/bin/busybox is dynamically linked: apt-get install busybox-static"
        );
        append("bin/busybox", tar::EntryType::Regular, 0o755, 0, &program, None);
        for applet in
            String::from_utf8_lossy(&applets.stdout).lines().filter(|applet| *applet != "busybox")
        {
            append(
                &format!("bin/{applet}"),
                tar::EntryType::Symlink,
                0o777,
                0,
                &[],
                Some("busybox"),
            );
        }
        builder.into_inner().expect("finish rootfs.tar");
        let rootfs = rootfs.to_string_lossy().into_owned();
        docker_cli(docker_host, &["import", "--change", "ENV PATH=/bin", &rootfs, TEST_IMAGE])
            .expect("docker import of the test image");
    });
}

/// Whether a 64-bit little-endian ELF file names a program interpreter (`PT_INTERP`): a
/// dynamically linked program.
fn has_program_interpreter(program: &[u8]) -> bool {
    let read = |offset: usize, width: usize| -> usize {
        program.get(offset..offset + width).map_or(0, |bytes| {
            bytes.iter().rev().fold(0, |value, byte| (value << 8) | usize::from(*byte))
        })
    };
    let (header_offset, header_size, header_count) = (read(0x20, 8), read(0x36, 2), read(0x38, 2));
    (0..header_count).any(|index| read(header_offset + index * header_size, 4) == 3)
}

/// A compose file as Coolify's parser leaves it: the `<uuid>` network external, container names
/// `<service>-<uuid>`, volumes named `<uuid>_<name>`.
fn compose(service_uuid: &str, services: &str, volumes: &[&str]) -> String {
    let mut yaml = format!(
        "services:\n{services}\nnetworks:\n  {service_uuid}:\n    name: {service_uuid}\n    external: true\n"
    );
    if !volumes.is_empty() {
        yaml.push_str("volumes:\n");
        for volume in volumes {
            yaml.push_str(&format!(
                "  {service_uuid}_{volume}:\n    name: {service_uuid}_{volume}\n"
            ));
        }
    }
    yaml
}

/// One service under the sandbox's hardening: a user, read-only root, no capabilities, a limit.
fn hardened_service(service_uuid: &str, name: &str, command: &str, extra: &str) -> String {
    // `$$`: compose would otherwise interpolate the shell's variables itself.
    let command = command.replace('$', "$$");
    format!(
        "  {name}:\n    image: {TEST_IMAGE}\n    container_name: {name}-{service_uuid}\n    user: \"65532:65532\"\n    read_only: true\n    cap_drop: [ALL]\n    mem_limit: 32m\n    command: [\"sh\", \"-c\", {command:?}]\n    networks: [{service_uuid}]\n{extra}"
    )
}

/// busybox httpd on 8080; `sh` is PID 1, so it traps TERM to stop at once.
fn web_service(service_uuid: &str) -> String {
    hardened_service(
        service_uuid,
        "web",
        "trap 'exit 0' TERM; echo web started; httpd -f -p 8080 -h /www & wait",
        "    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1:8080/\"]\n      interval: 1s\n      timeout: 1s\n      retries: 10\n",
    )
}

fn deployment(service_uuid: &str, compose_yaml: String) -> Deployment {
    Deployment {
        service_uuid: service_uuid.to_owned(),
        compose_yaml,
        env_file: "GREETING=hello\n".to_owned(),
        files: Vec::new(),
        network: service_uuid.to_owned(),
    }
}

fn state_of<'states>(
    states: &'states [ContainerState],
    compose_service: &str,
) -> &'states ContainerState {
    states
        .iter()
        .find(|state| state.compose_service == compose_service)
        .unwrap_or_else(|| panic!("no {compose_service} container in {states:#?}"))
}

fn archive_entries(archive: &Path) -> Vec<(PathBuf, String)> {
    let file = std::fs::File::open(archive).expect("open archive");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive
        .entries()
        .expect("tar entries")
        .map(|entry| {
            let mut entry = entry.expect("tar entry");
            let mut contents = String::new();
            let _ignored = entry.read_to_string(&mut contents);
            (entry.path().expect("entry path").into_owned(), contents)
        })
        .collect()
}

#[tokio::test]
#[expect(clippy::print_stderr, reason = "the figures this test measures, for the record")]
async fn a_hardened_stack_starts_healthy_and_keeps_its_volume_across_stop_start_and_delete() {
    let Some(mut fixture) = fixture_or_skip().await else { return };
    let service_uuid = fixture.new_service_uuid("stack");
    let volume_name = format!("{service_uuid}_data");
    let worker = hardened_service(
        &service_uuid,
        "worker",
        "trap 'exit 0' TERM; n=$(cat /data/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/count; echo worker start $n greeting $GREETING; sleep 3600 & wait",
        &format!("    env_file: [.env]\n    volumes: [\"{volume_name}:/data\"]\n"),
    );
    let job = hardened_service(&service_uuid, "job", "echo job done", "    restart: \"no\"\n");
    let services = format!("{}{worker}{job}", web_service(&service_uuid));
    let deployment = deployment(&service_uuid, compose(&service_uuid, &services, &["data"]));

    let started = Instant::now();
    let output = fixture.runtime.start(&deployment).await.expect("start");
    let start_took = started.elapsed();
    assert!(output.contains("Started"), "compose's output: {output}");
    let running = fixture
        .wait_for_states(&service_uuid, Duration::from_secs(30), |states| {
            states.len() == 3 && state_of(states, "web").state == "running"
        })
        .await;
    assert_eq!(state_of(&running, "worker").health, None);
    let states = fixture
        .wait_for_states(&service_uuid, Duration::from_secs(30), |states| {
            state_of(states, "web").health.as_deref() == Some("healthy")
                && state_of(states, "job").state == "exited"
        })
        .await;
    let healthy_took = started.elapsed();
    let job_state = state_of(&states, "job");
    assert_eq!((job_state.exit_code, job_state.oom_killed), (0, false));
    assert_eq!(state_of(&states, "web").container_name, format!("web-{service_uuid}"));
    let timed = Instant::now();
    let all_states = fixture.runtime.container_states().await.expect("container_states");
    let states_took = timed.elapsed();

    // Logs: a running container's, a stopped one's (400), an unknown one's (404).
    let logs = fixture.runtime.logs(&service_uuid, &format!("worker-{service_uuid}"), 100).await;
    assert!(logs.expect("worker logs").contains("worker start 1 greeting hello"));
    let logs =
        fixture.runtime.logs(&service_uuid, "web", 0).await.expect("web logs by service name");
    assert!(logs.contains("web started"), "{logs}");
    let stopped = fixture.runtime.logs(&service_uuid, &format!("job-{service_uuid}"), 100).await;
    assert!(
        matches!(&stopped, Err(LogsError::NotRunning { state, .. }) if state == "exited"),
        "{stopped:?}"
    );
    assert_eq!(stopped.expect_err("not running").to_string(), "Container is not running.");
    let unknown = fixture.runtime.logs(&service_uuid, "nobody", 100).await;
    assert!(matches!(&unknown, Err(LogsError::NotFound { .. })), "{unknown:?}");

    // Backups: the volume with its file; an empty volume gives an archive with no file (Coolify
    // fails only an empty archive); a missing volume fails.
    let archive = fixture.work.path().join("backups/data.tar");
    let size = fixture.runtime.backup_volume(&volume_name, &archive).await.expect("backup");
    assert_eq!(size, std::fs::metadata(&archive).expect("archive").len());
    let entries = archive_entries(&archive);
    assert!(
        entries.iter().any(|(path, contents)| path.ends_with("count") && contents == "1\n"),
        "{entries:?}"
    );
    let empty_volume = format!("{service_uuid}-empty");
    docker_cli(&fixture.docker_host, &["volume", "create", &empty_volume]).expect("volume create");
    let empty_archive = fixture.work.path().join("backups/empty.tar");
    fixture.runtime.backup_volume(&empty_volume, &empty_archive).await.expect("empty backup");
    assert!(archive_entries(&empty_archive).iter().all(|(path, _)| path.file_name().is_none()));
    let missing_archive = fixture.work.path().join("backups/missing.tar");
    let missing = fixture.runtime.backup_volume("cfa-test-no-such-volume", &missing_archive).await;
    assert!(matches!(missing, Err(DockerError::VolumeNotFound { .. })), "{missing:?}");
    assert!(!missing_archive.exists(), "a failed backup leaves no archive");

    // Stop keeps the volume and its data; a new start counts on from it.
    fixture.runtime.stop(&service_uuid, true).await.expect("stop");
    assert!(fixture.states_of(&service_uuid).await.is_empty());
    assert!(fixture.volume_exists(&volume_name));
    let gone = fixture.runtime.logs(&service_uuid, "worker", 100).await;
    assert!(matches!(gone, Err(LogsError::NotFound { .. })), "stop removes containers: {gone:?}");
    fixture.runtime.start(&deployment).await.expect("second start");
    fixture
        .wait_for_states(&service_uuid, Duration::from_secs(30), |states| states.len() == 3)
        .await;
    let logs = wait_for_logs(&fixture, &service_uuid, "worker", "worker start 2").await;
    assert!(logs.contains("worker start 2"), "{logs}");

    // Delete without volumes keeps the data; with them, removes it.
    fixture.runtime.delete(&service_uuid, KEEP_VOLUMES).await.expect("delete keeping volumes");
    assert!(fixture.volume_exists(&volume_name));
    assert!(!fixture.network_exists(&service_uuid));
    assert!(!fixture.work.path().join("services").join(&service_uuid).exists());
    fixture.runtime.start(&deployment).await.expect("start after delete");
    wait_for_logs(&fixture, &service_uuid, "worker", "worker start 3").await;
    fixture.runtime.delete(&service_uuid, DELETE_EVERYTHING).await.expect("delete everything");
    assert!(!fixture.volume_exists(&volume_name));
    assert!(fixture.volume_exists(&empty_volume), "a volume not named <uuid>_… stays");
    assert!(fixture.states_of(&service_uuid).await.is_empty());
    let _ignored = docker_cli(&fixture.docker_host, &["volume", "rm", &empty_volume]);
    eprintln!(
        "docker runtime: compose up {start_took:?}, start to healthy {healthy_took:?}, container_states for {} containers {states_took:?}",
        all_states.len()
    );
}

async fn wait_for_logs(
    fixture: &Fixture,
    service_uuid: &str,
    container: &str,
    expected: &str,
) -> String {
    let started = Instant::now();
    loop {
        if let Ok(logs) = fixture.runtime.logs(service_uuid, container, 100).await
            && logs.contains(expected)
        {
            return logs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{container} never logged {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_container_over_its_memory_limit_is_oom_killed() {
    let Some(mut fixture) = fixture_or_skip().await else { return };
    let service_uuid = fixture.new_service_uuid("oom");
    // dd's 64 MB buffer is charged to the 16 MB cgroup; `exec` makes dd the process the kernel
    // kills, so the container itself dies of it.
    let hog = hardened_service(
        &service_uuid,
        "hog",
        "exec dd if=/dev/zero of=/dev/null bs=64M count=1",
        "    restart: \"no\"\n",
    )
    .replace("mem_limit: 32m", "mem_limit: 16m");
    let deployment = deployment(&service_uuid, compose(&service_uuid, &hog, &[]));
    fixture.runtime.start(&deployment).await.expect("start");
    let states = fixture
        .wait_for_states(&service_uuid, Duration::from_secs(20), |states| {
            states.iter().any(|state| state.state == "exited")
        })
        .await;
    let hog = state_of(&states, "hog");
    assert!(hog.oom_killed, "{hog:?}");
    assert_eq!(hog.exit_code, 137);
    fixture.runtime.delete(&service_uuid, DELETE_EVERYTHING).await.expect("delete");
}

#[tokio::test]
async fn a_config_file_reaches_the_container_and_its_non_root_user_cannot_change_it() {
    let Some(mut fixture) = fixture_or_skip().await else { return };
    let service_uuid = fixture.new_service_uuid("file");
    let work_dir = fixture.runtime.service_dir(&service_uuid);
    // Coolify's parser turns `./config/app.conf` into a bind below the service's directory, and
    // drops a long-form `read_only` (parsers.php): the bind is read-write, the file 0755 root's.
    let bind = format!(
        "    volumes:\n      - {}/config/cfa-1/app.conf:/etc/cfa-1/app.conf\n    restart: \"no\"\n",
        work_dir.display()
    );
    let app = hardened_service(
        &service_uuid,
        "app",
        "cat /etc/cfa-1/app.conf; echo changed > /etc/cfa-1/app.conf && echo WROTE || echo REFUSED",
        &bind,
    );
    let mut deployment = deployment(&service_uuid, compose(&service_uuid, &app, &[]));
    deployment.files = vec![DeploymentFile {
        relative_path: "config/cfa-1/app.conf".to_owned(),
        content: Some("setting = 1\n".to_owned()),
        is_directory: false,
    }];
    fixture.runtime.start(&deployment).await.expect("start");
    fixture
        .wait_for_states(&service_uuid, Duration::from_secs(20), |states| {
            states.iter().any(|state| state.state == "exited")
        })
        .await;
    let logs = docker_cli(&fixture.docker_host, &["logs", &format!("app-{service_uuid}")]).unwrap();
    assert!(logs.contains("setting = 1"), "the file's content reached the container: {logs}");
    assert!(logs.contains("REFUSED") && !logs.contains("WROTE"), "{logs}");
    let on_host = std::fs::read_to_string(work_dir.join("config/cfa-1/app.conf")).unwrap();
    assert_eq!(on_host, "setting = 1\n");
    fixture.runtime.delete(&service_uuid, DELETE_EVERYTHING).await.expect("delete");
}

#[tokio::test]
async fn a_missing_image_fails_the_start_with_composes_message() {
    let Some(mut fixture) = fixture_or_skip().await else { return };
    let service_uuid = fixture.new_service_uuid("missing");
    let services = hardened_service(&service_uuid, "app", "true", "")
        .replace(TEST_IMAGE, "cfa-test/not-built-here:0");
    let deployment = deployment(&service_uuid, compose(&service_uuid, &services, &[]));
    let error = fixture.runtime.start(&deployment).await.expect_err("a missing image cannot start");
    let DockerError::Compose { output, .. } = &error else { panic!("{error:?}") };
    assert!(output.contains("cfa-test/not-built-here"), "{output}");
    let message = error.to_string();
    assert!(message.contains(&service_uuid) && message.contains("hint:"), "{message}");
    fixture.runtime.delete(&service_uuid, DELETE_EVERYTHING).await.expect("delete");
}

#[tokio::test]
#[expect(clippy::print_stderr, reason = "the figures this test measures, for the record")]
async fn the_front_routes_by_host_to_a_container() {
    let Some(mut fixture) = fixture_or_skip().await else { return };
    let service_uuid = fixture.new_service_uuid("front");
    let deployment =
        deployment(&service_uuid, compose(&service_uuid, &web_service(&service_uuid), &[]));
    fixture.runtime.start(&deployment).await.expect("start");
    fixture
        .wait_for_states(&service_uuid, Duration::from_secs(30), |states| {
            states.iter().any(|state| state.health.as_deref() == Some("healthy"))
        })
        .await;
    let address = fixture.runtime.container_address(&service_uuid, "web").await.expect("address");
    let upstream = SocketAddr::new(address, 8080);
    let front = Front::start(
        "127.0.0.1:0".parse().expect("address"),
        Arc::new(move |host: &str| (host == "app.cfa.test").then_some(upstream)),
    )
    .await
    .expect("front");
    let client = reqwest::Client::new();
    let get = |host: &'static str| {
        client.get(format!("{}/", front.base_url())).header("host", host).send()
    };

    let routed = get("APP.cfa.test:8000").await.expect("routed request");
    assert_eq!(routed.status(), 200);
    assert_eq!(routed.text().await.expect("body"), "hello from busybox\n");
    let unknown = get("other.cfa.test").await.expect("unknown host");
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.text().await.expect("body"), "404 page not found\n");

    fixture.runtime.stop(&service_uuid, false).await.expect("stop");
    let asked = Instant::now();
    let stopped = get("app.cfa.test").await.expect("stopped upstream");
    assert_eq!(stopped.status(), 502);
    eprintln!("front: 502 for a stopped container after {:?}", asked.elapsed());
    front.shutdown().await;
    fixture.runtime.delete(&service_uuid, DELETE_EVERYTHING).await.expect("delete");
}
