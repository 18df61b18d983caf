//! The management API's access model against the real broker: users, vhosts, permissions,
//! topic permissions, limits and policies through the `rabbitmq_http_client` crate (which
//! must parse every reply), their effect over AMQP with lapin, their survival across a
//! restart, RabbitMQ's status codes and error bodies, access by tag, and the key sets of
//! RabbitMQ 3.10.8's replies.

use rabbitmq_http_client::blocking_api::{Client, ClientBuilder};
use rabbitmq_http_client::commons::{PolicyTarget, UserLimitTarget, VirtualHostLimitTarget};
use rabbitmq_http_client::password_hashing::{base64_encoded_salted_password_hash_sha256, salt};
use rabbitmq_http_client::requests::{
    EnforcedLimitParams, Permissions, PolicyDefinitionBuilder, PolicyParams, TopicPermissions, UserParams,
    VirtualHostParams,
};
use serde_json::json;

use crate::harness::broker::Broker;
use crate::harness::golden::assert_golden_keys;
use crate::harness::http::{guest, request, until, until_within};
use crate::harness::lapin_client::{connect_url, declare, expect_error, get, publish, try_connect, within};

type Api = Client<String, String, String>;

fn client_as(broker: &Broker, user: &str, password: &str) -> Api {
    ClientBuilder::new()
        .with_endpoint(format!("http://{}/api", broker.addr("http")))
        .with_basic_auth_credentials(user.to_owned(), password.to_owned())
        .build()
        .expect("client")
}

fn client(broker: &Broker) -> Api {
    client_as(broker, "guest", "guest")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn amqp_url(broker: &Broker, user: &str, password: &str, vhost: &str) -> String {
    format!("amqp://{user}:{password}@{}/{vhost}", broker.addr("amqp"))
}

/// Creates, lists, reads and deletes every kind of access object with the Rust client.
#[test]
fn rust_client_creates_lists_and_deletes_access_objects() {
    let broker = Broker::start(&["--storage", "memory"]);
    let api = client(&broker);
    let vhost = VirtualHostParams::named("rv").with_description("for tests").with_tags(vec!["t1", "t2"]);
    api.create_vhost(&vhost).expect("create vhost");
    let listed = api.get_vhost("rv").expect("get vhost");
    assert_eq!(listed.description.as_deref(), Some("for tests"));
    assert!(api.list_vhosts().expect("vhosts").iter().any(|v| v.name == "rv"));

    let hash = base64_encoded_salted_password_hash_sha256(&salt(), "rpw");
    api.create_user(&UserParams::new("ru", &hash, "management,policymaker")).expect("create user");
    let user = api.get_user("ru").expect("get user");
    assert_eq!(user.password_hash, hash);
    assert_eq!(user.tags.0, vec!["management".to_owned(), "policymaker".to_owned()]);
    assert!(api.list_users().expect("users").iter().any(|u| u.name == "ru"));
    assert!(api.list_users_without_permissions().expect("without").iter().any(|u| u.name == "ru"));

    let granted = Permissions { user: "ru", vhost: "rv", configure: "^c", write: "^w", read: "^r" };
    api.declare_permissions(&granted).expect("permissions");
    let got = api.get_permissions("rv", "ru").expect("get permissions");
    assert_eq!((got.configure.as_str(), got.write.as_str(), got.read.as_str()), ("^c", "^w", "^r"));
    assert!(api.list_permissions().expect("all").iter().any(|p| p.user == "ru" && p.vhost == "rv"));
    assert_eq!(api.list_permissions_in("rv").expect("in vhost").len(), 1);
    assert_eq!(api.list_permissions_of("ru").expect("of user").len(), 1);
    assert!(!api.list_users_without_permissions().expect("without").iter().any(|u| u.name == "ru"));

    let topic = TopicPermissions { user: "ru", vhost: "rv", exchange: "amq.topic", write: "^a", read: ".*" };
    api.declare_topic_permissions(&topic).expect("topic permissions");
    let got = api.get_topic_permissions_of("rv", "ru").expect("get topic permissions");
    assert_eq!((got.exchange.as_str(), got.write.as_str()), ("amq.topic", "^a"));
    assert_eq!(api.list_topic_permissions().expect("all").len(), 1);
    assert_eq!(api.list_topic_permissions_in("rv").expect("in").len(), 1);
    assert_eq!(api.list_topic_permissions_of("ru").expect("of").len(), 1);

    let definition = PolicyDefinitionBuilder::new().max_length(7).build();
    let mut policy = PolicyParams::new("rv", "rp", "^q", definition);
    policy.apply_to = PolicyTarget::Queues;
    policy.priority = 3;
    api.declare_policy(&policy).expect("policy");
    let got = api.get_policy("rv", "rp").expect("get policy");
    assert_eq!((got.pattern.as_str(), got.priority), ("^q", 3));
    assert_eq!(got.definition.get("max-length"), Some(&json!(7)));
    assert_eq!(api.list_policies_in("rv").expect("in").len(), 1);
    assert!(api.list_policies().expect("all").iter().any(|p| p.name == "rp"));

    api.set_vhost_limit("rv", EnforcedLimitParams::new(VirtualHostLimitTarget::MaxQueues, 9)).expect("limit");
    let limits = api.list_vhost_limits("rv").expect("vhost limits");
    assert_eq!(limits.first().map(|l| l.limits.get("max-queues").cloned()), Some(Some(json!(9))));
    assert!(api.list_all_vhost_limits().expect("all").iter().any(|l| l.vhost == "rv"));
    api.set_user_limit("ru", EnforcedLimitParams::new(UserLimitTarget::MaxChannels, 4)).expect("limit");
    let limits = api.list_user_limits("ru").expect("user limits");
    assert_eq!(limits.first().map(|l| l.limits.get("max-channels").cloned()), Some(Some(json!(4))));
    assert_eq!(api.list_all_user_limits().expect("all").len(), 1);

    api.clear_user_limit("ru", UserLimitTarget::MaxChannels).expect("clear user limit");
    assert!(api.list_user_limits("ru").expect("user limits").is_empty());
    api.clear_vhost_limit("rv", VirtualHostLimitTarget::MaxQueues).expect("clear vhost limit");
    assert!(api.list_vhost_limits("rv").expect("vhost limits").is_empty());
    api.delete_policy("rv", "rp", false).expect("delete policy");
    assert!(api.list_policies_in("rv").expect("policies").is_empty());
    api.clear_topic_permissions("rv", "ru", false).expect("clear topic permissions");
    assert!(api.list_topic_permissions().expect("topic").is_empty());
    api.clear_permissions("rv", "ru", false).expect("clear permissions");
    assert!(api.list_permissions_in("rv").expect("permissions").is_empty());
    api.create_user(&UserParams::new("ru2", "", "")).expect("a user without a password");
    api.delete_users(vec!["ru", "ru2", "nobody"]).expect("bulk delete");
    assert!(api.list_users().expect("users").iter().all(|u| u.name == "guest"));
    api.delete_vhost("rv", false).expect("delete vhost");
    assert!(api.get_vhost("rv").is_err());
    assert!(api.list_vhosts().expect("vhosts").iter().all(|v| v.name == "/"));
}

/// A user made over HTTP logs in over AMQP with their password, and the permissions set
/// over HTTP are the ones AMQP enforces.
#[test]
fn users_and_permissions_set_over_http_rule_amqp() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    let put = guest(&addr, "PUT", "/api/users/amy", r#"{"password":"amy-pw","tags":""}"#);
    assert_eq!(put.status, 201);
    let rt = runtime();
    rt.block_on(async {
        let refused = try_connect(&amqp_url(&broker, "amy", "amy-pw", "%2F")).await;
        assert!(refused.is_err(), "no permissions yet");
        assert!(try_connect(&amqp_url(&broker, "amy", "wrong", "%2F")).await.is_err());
    });
    let body = r#"{"configure":"^own-","write":"^own-","read":"^own-"}"#;
    assert_eq!(guest(&addr, "PUT", "/api/permissions/%2F/amy", body).status, 201);
    rt.block_on(async {
        let connection = connect_url(&amqp_url(&broker, "amy", "amy-pw", "%2F")).await;
        let channel = within("channel", connection.create_channel()).await.expect("channel");
        declare(&channel, "own-q", Default::default()).await;
        let error = expect_error(
            "declare other-q",
            channel.queue_declare("other-q", Default::default(), Default::default()),
        )
        .await;
        assert_eq!(
            error,
            "403 ACCESS_REFUSED - access to queue 'other-q' in vhost '/' refused for user 'amy'"
        );
    });
    let hash = base64_encoded_salted_password_hash_sha256(&salt(), "new-pw");
    let body = json!({"password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["management"]});
    assert_eq!(guest(&addr, "PUT", "/api/users/amy", &body.to_string()).status, 204);
    rt.block_on(async {
        assert!(try_connect(&amqp_url(&broker, "amy", "amy-pw", "%2F")).await.is_err());
        connect_url(&amqp_url(&broker, "amy", "new-pw", "%2F")).await;
    });
    assert_eq!(guest(&addr, "DELETE", "/api/permissions/%2F/amy", "").status, 204);
    rt.block_on(async {
        assert!(try_connect(&amqp_url(&broker, "amy", "new-pw", "%2F")).await.is_err());
    });
}

/// A vhost made over HTTP takes connections and queues; deleting it closes its connections
/// with 320 and removes its queues.
#[test]
fn a_vhost_made_over_http_is_usable_and_its_deletion_removes_its_queues() {
    let broker = Broker::start(&[]);
    let addr = broker.addr("http").to_owned();
    assert_eq!(guest(&addr, "PUT", "/api/vhosts/hv", r#"{"description":"h"}"#).status, 201);
    assert_eq!(guest(&addr, "PUT", "/api/vhosts/hv", r#"{"description":"h"}"#).status, 204);
    let all = r#"{"configure":".*","write":".*","read":".*"}"#;
    assert_eq!(guest(&addr, "PUT", "/api/permissions/hv/guest", all).status, 201);
    let rt = runtime();
    let url = amqp_url(&broker, "guest", "guest", "hv");
    let (connection, mut errors) = rt.block_on(async {
        let connection = connect_url(&url).await;
        let errors = crate::harness::lapin_client::Errors::of_connection(&connection);
        let channel = within("channel", connection.create_channel()).await.expect("channel");
        let durable = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
        within("declare", channel.queue_declare("hv-q", durable, Default::default())).await.expect("declare");
        (connection, errors)
    });
    assert_eq!(guest(&addr, "DELETE", "/api/vhosts/hv", "").status, 204);
    rt.block_on(async {
        assert_eq!(errors.next().await, "320 CONNECTION_FORCED - vhost 'hv' is deleted");
    });
    drop(connection);
    assert_eq!(guest(&addr, "GET", "/api/vhosts/hv", "").status, 404);
    assert_eq!(guest(&addr, "DELETE", "/api/vhosts/hv", "").status, 404);
    assert_eq!(guest(&addr, "PUT", "/api/vhosts/hv", "{}").status, 201);
    assert_eq!(guest(&addr, "PUT", "/api/permissions/hv/guest", all).status, 201);
    rt.block_on(async {
        let connection = connect_url(&url).await;
        let channel = within("channel", connection.create_channel()).await.expect("channel");
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let error =
            expect_error("passive declare", channel.queue_declare("hv-q", passive, Default::default())).await;
        assert_eq!(error, "404 NOT_FOUND - no queue 'hv-q' in vhost 'hv'");
    });
}

/// Users, vhosts, permissions, topic permissions, limits and policies set over HTTP are
/// there after a restart.
#[test]
fn access_objects_survive_a_restart() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let broker = Broker::start_in(&data_dir, &[]);
    let api = client(&broker);
    api.create_vhost(&VirtualHostParams::named("kept").with_description("d")).expect("vhost");
    let hash = base64_encoded_salted_password_hash_sha256(&salt(), "kpw");
    api.create_user(&UserParams::new("keeper", &hash, "monitoring")).expect("user");
    let granted = Permissions { user: "keeper", vhost: "kept", configure: "", write: ".*", read: ".*" };
    api.declare_permissions(&granted).expect("permissions");
    let topic =
        TopicPermissions { user: "keeper", vhost: "kept", exchange: "amq.topic", write: "^k", read: ".*" };
    api.declare_topic_permissions(&topic).expect("topic permissions");
    let definition = PolicyDefinitionBuilder::new().message_ttl(1000).build();
    api.declare_policy(&PolicyParams::new("kept", "kp", "^k", definition)).expect("policy");
    api.set_vhost_limit("kept", EnforcedLimitParams::new(VirtualHostLimitTarget::MaxConnections, 5))
        .expect("limit");
    api.set_user_limit("keeper", EnforcedLimitParams::new(UserLimitTarget::MaxConnections, 2))
        .expect("limit");
    assert!(broker.terminate().success());

    let broker = Broker::start_in(&data_dir, &[]);
    let api = client(&broker);
    assert_eq!(api.get_vhost("kept").expect("vhost").description.as_deref(), Some("d"));
    assert_eq!(api.get_user("keeper").expect("user").password_hash, hash);
    assert_eq!(api.get_permissions("kept", "keeper").expect("permissions").write, ".*");
    assert_eq!(api.get_topic_permissions_of("kept", "keeper").expect("topic").write, "^k");
    assert_eq!(api.get_policy("kept", "kp").expect("policy").pattern, "^k");
    assert_eq!(api.list_vhost_limits("kept").expect("vhost limits").len(), 1);
    assert_eq!(api.list_user_limits("keeper").expect("user limits").len(), 1);
    runtime().block_on(async {
        connect_url(&amqp_url(&broker, "keeper", "kpw", "kept")).await;
    });
}

/// RabbitMQ's status codes and error bodies (`errors.json`).
#[test]
fn status_codes_and_errors_are_rabbitmqs() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    let user = r#"{"password":"scratch-secret","tags":"management"}"#;
    assert_eq!(guest(&addr, "PUT", "/api/users/scratch", user).status, 201);
    assert_eq!(guest(&addr, "PUT", "/api/users/scratch", user).status, 204);
    assert_eq!(
        guest(&addr, "GET", "/api/users/no-such-user", "").json(),
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    let all = r#"{"configure":".*","write":".*","read":".*"}"#;
    let missing = guest(&addr, "PUT", "/api/permissions/no-such-vhost/scratch", all);
    assert_eq!(
        (missing.status, missing.json()),
        (400, json!({"error": "bad_request", "reason": "vhost_or_user_not_found"}))
    );
    let limit = guest(&addr, "PUT", "/api/vhost-limits/scratch-missing/max-queues", r#"{"value":1}"#);
    assert_eq!(
        (limit.status, limit.json()),
        (404, json!({"error": "not_found", "reason": "vhost_not_found"}))
    );
    let unknown = guest(
        &addr,
        "PUT",
        "/api/policies/%2F/bad",
        r#"{"pattern":"^x","apply-to":"queues","definition":{"no-such-key":1}}"#,
    );
    assert_eq!(unknown.status, 400);
    assert_eq!(
        unknown.json()["reason"],
        "Validation failed\n\n[{&lt;&lt;\"no-such-key\"&gt;&gt;,1}] are not recognised policy settings\n"
    );
    let bad = guest(
        &addr,
        "PUT",
        "/api/policies/%2F/bad",
        r#"{"pattern":"^x","apply-to":"queues","definition":{"max-length":"ten"}}"#,
    );
    assert_eq!(
        bad.json()["reason"],
        "Validation failed\n\n&lt;&lt;\"ten\"&gt;&gt; is not a valid maximum length\n"
    );
    let policy = r#"{"pattern":"^scratch","apply-to":"queues","priority":0,"definition":{"max-length":10}}"#;
    assert_eq!(guest(&addr, "PUT", "/api/policies/%2F/scratch", policy).status, 201);
    assert_eq!(guest(&addr, "PUT", "/api/policies/%2F/scratch", policy).status, 204);
    assert_eq!(guest(&addr, "DELETE", "/api/policies/%2F/scratch", "").status, 204);
    assert_eq!(guest(&addr, "DELETE", "/api/policies/%2F/scratch", "").status, 404);
}

/// Who may do what, by tag: administrators everything, monitoring users see every vhost,
/// policymakers set policies and vhost limits where they have permissions.
#[test]
fn access_follows_the_users_tags() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    let all = r#"{"configure":".*","write":".*","read":".*"}"#;
    let policy = r#"{"pattern":"^scratch","apply-to":"queues","priority":0,"definition":{"max-length":10}}"#;
    for (name, tags) in [("mon", "monitoring"), ("pol", "policymaker"), ("man", "management")] {
        let body = json!({"password": "pw", "tags": tags}).to_string();
        assert_eq!(guest(&addr, "PUT", &format!("/api/users/{name}"), &body).status, 201);
    }
    let as_user = |name: &str, method: &str, path: &str, body: &str| {
        request(&addr, method, path, body, (name, "pw"), &[])
    };
    let refused = as_user("mon", "GET", "/api/users", "");
    assert_eq!(
        (refused.status, refused.json()),
        (401, json!({"error": "not_authorised", "reason": "Not administrator user"}))
    );
    assert_eq!(as_user("pol", "GET", "/api/users", "").status, 401);
    assert_eq!(
        as_user("mon", "GET", "/api/vhosts", "").json().as_array().map(Vec::len),
        Some(1),
        "monitoring users see every vhost"
    );
    assert_eq!(as_user("man", "GET", "/api/vhosts", "").json(), json!([]), "no permissions, no vhosts");
    assert_eq!(
        as_user("man", "GET", "/api/vhosts/%2F", "").json()["reason"],
        "User not authorised to access virtual host"
    );
    assert_eq!(as_user("man", "PUT", "/api/vhosts/mine", "{}").status, 401);
    let object = json!({"error": "not_authorised", "reason": "User not authorised to access object"});
    let refused = as_user("pol", "PUT", "/api/policies/%2F/p", policy);
    assert_eq!(
        (refused.status, refused.json()),
        (401, object.clone()),
        "a policymaker without permissions in the vhost"
    );
    assert_eq!(as_user("man", "GET", "/api/policies", "").json(), object);
    assert_eq!(guest(&addr, "PUT", "/api/permissions/%2F/pol", all).status, 201);
    assert_eq!(as_user("pol", "PUT", "/api/policies/%2F/p", policy).status, 201);
    assert_eq!(as_user("pol", "PUT", "/api/vhost-limits/%2F/max-queues", r#"{"value":100}"#).status, 204);
    assert_eq!(as_user("pol", "GET", "/api/policies", "").json().as_array().map(Vec::len), Some(1));
    assert_eq!(as_user("pol", "PUT", "/api/user-limits/pol/max-channels", r#"{"value":1}"#).status, 401);
}

/// The keys of each reply are those of RabbitMQ 3.10.8's for the same object.
#[test]
fn replies_have_rabbitmqs_keys() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    let get = |path: &str| {
        let reply = guest(&addr, "GET", path, "");
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        reply.json()
    };
    let put = |path: &str, body: &str| assert!(guest(&addr, "PUT", path, body).status < 300, "PUT {path}");
    put(
        "/api/vhosts/v1",
        r#"{"description":"second vhost","tags":"team-a,billing","default_queue_type":"classic"}"#,
    );
    put("/api/users/admin", r#"{"password":"admin-secret","tags":"administrator"}"#);
    put("/api/users/nopass", r#"{"tags":""}"#);
    put("/api/permissions/v1/admin", r#"{"configure":".*","write":".*","read":".*"}"#);
    put(
        "/api/topic-permissions/%2F/admin",
        r#"{"exchange":"amq.topic","write":"^{username}\\..*","read":".*"}"#,
    );
    put("/api/vhost-limits/v1/max-connections", r#"{"value":50}"#);
    put("/api/user-limits/admin/max-channels", r#"{"value":20}"#);
    put(
        "/api/policies/v1/pol-limits",
        r#"{"pattern":"^pol-","apply-to":"queues","priority":1,"definition":{"max-length":100}}"#,
    );

    assert_golden_keys("users.json", &get("/api/users"), &[], &[]);
    assert_golden_keys("users.user.json", &get("/api/users/admin"), &[], &[]);
    assert_golden_keys("users.user.nopass.json", &get("/api/users/nopass"), &[], &[]);
    assert_golden_keys("permissions.json", &get("/api/permissions"), &[], &[]);
    assert_golden_keys("permissions.vhost.user.json", &get("/api/permissions/v1/admin"), &[], &[]);
    assert_golden_keys("users.user.permissions.json", &get("/api/users/admin/permissions"), &[], &[]);
    assert_golden_keys("vhosts.vhost.permissions.json", &get("/api/vhosts/v1/permissions"), &[], &[]);
    assert_golden_keys("topic-permissions.json", &get("/api/topic-permissions"), &[], &[]);
    assert_golden_keys(
        "topic-permissions.vhost.user.json",
        &get("/api/topic-permissions/%2F/admin"),
        &[],
        &[],
    );
    assert_golden_keys(
        "users.user.topic-permissions.json",
        &get("/api/users/admin/topic-permissions"),
        &[],
        &[],
    );
    assert_golden_keys(
        "vhosts.vhost.topic-permissions.json",
        &get("/api/vhosts/%2F/topic-permissions"),
        &[],
        &[],
    );
    assert_golden_keys("vhost-limits.json", &get("/api/vhost-limits"), &[], &[]);
    assert_golden_keys("vhost-limits.vhost.json", &get("/api/vhost-limits/v1"), &[], &[]);
    assert_golden_keys("user-limits.json", &get("/api/user-limits"), &[], &[]);
    assert_golden_keys("user-limits.user.json", &get("/api/user-limits/admin"), &[], &[]);
    assert_golden_keys("policies.json", &get("/api/policies"), &[], &[]);
    assert_golden_keys("policies.vhost.json", &get("/api/policies/v1"), &[], &[]);
    assert_golden_keys("policies.vhost.name.json", &get("/api/policies/v1/pol-limits"), &[], &[]);
    // v1 has had no traffic: no message statistics, no byte counts, as in RabbitMQ.
    assert_golden_keys("vhosts.vhost.json", &get("/api/vhosts/v1"), &[], &[]);
    // `/` has: the list shows both kinds.
    let rt = runtime();
    rt.block_on(async {
        let connection = connect_url(&amqp_url(&broker, "guest", "guest", "%2F")).await;
        let channel = within("channel", connection.create_channel()).await.expect("channel");
        publish(&channel, "", "nowhere", b"x").await;
        within("close", connection.close(200, "bye")).await.expect("close");
    });
    let listed = until(&addr, "/api/vhosts", |list| {
        list.as_array().is_some_and(|l| l.iter().any(|v| v["message_stats"]["publish"] == 1))
    });
    assert_golden_keys("vhosts.json", &listed, &[], &[]);
    let without = get("/api/users/without-permissions");
    assert!(without.as_array().is_some_and(|users| users.iter().any(|u| u["name"] == "nopass")), "{without}");
}

/// Debian's rabbitmqadmin v1 declares, lists and deletes users, vhosts, permissions and
/// policies.
#[test]
fn rabbitmqadmin_v1_manages_users_vhosts_permissions_and_policies() {
    let admin = "/usr/bin/rabbitmqadmin";
    if !std::path::Path::new(admin).exists() {
        eprintln!("skipped: {admin} is not installed (tools/clients/install.sh installs it)");
        return;
    }
    let broker = Broker::start(&["--storage", "memory"]);
    let port = broker.addr("http").rsplit(':').next().expect("a port").to_owned();
    let run = |args: &[&str]| -> String {
        let output = std::process::Command::new(admin)
            .args(["-H", "127.0.0.1", "-P", &port, "-u", "guest", "-p", "guest"])
            .args(args)
            .output()
            .expect("run rabbitmqadmin");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "rabbitmqadmin {args:?}: {stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    run(&["declare", "vhost", "name=av"]);
    run(&["declare", "user", "name=au", "password=apw", "tags=monitoring"]);
    run(&["declare", "permission", "vhost=av", "user=au", "configure=.*", "write=.*", "read=.*"]);
    run(&[
        "-V",
        "av",
        "declare",
        "policy",
        "name=ap",
        "pattern=^a",
        "definition={\"max-length\":3}",
        "apply-to=queues",
    ]);
    assert!(run(&["list", "users"]).contains("au"));
    assert!(run(&["list", "vhosts"]).contains("av"));
    assert!(run(&["list", "permissions"]).contains("au"));
    assert!(run(&["list", "policies"]).contains("ap"));
    runtime().block_on(async {
        connect_url(&amqp_url(&broker, "au", "apw", "av")).await;
    });
    run(&["-V", "av", "delete", "policy", "name=ap"]);
    run(&["delete", "permission", "vhost=av", "user=au"]);
    run(&["delete", "user", "name=au"]);
    run(&["delete", "vhost", "name=av"]);
    assert!(!run(&["list", "vhosts"]).contains("av"));
    assert!(!run(&["list", "users"]).contains("au"));
}

/// Deleting a user closes their connections with 320, as RabbitMQ does.
#[test]
fn deleting_a_user_closes_their_connections() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    assert_eq!(guest(&addr, "PUT", "/api/users/gone", r#"{"password":"pw","tags":""}"#).status, 201);
    let all = r#"{"configure":".*","write":".*","read":".*"}"#;
    assert_eq!(guest(&addr, "PUT", "/api/permissions/%2F/gone", all).status, 201);
    let rt = runtime();
    let (connection, mut errors) = rt.block_on(async {
        let connection = connect_url(&amqp_url(&broker, "gone", "pw", "%2F")).await;
        let errors = crate::harness::lapin_client::Errors::of_connection(&connection);
        (connection, errors)
    });
    assert_eq!(guest(&addr, "DELETE", "/api/users/gone", "").status, 204);
    rt.block_on(async {
        assert_eq!(errors.next().await, "320 CONNECTION_FORCED - user 'gone' is deleted");
    });
    drop(connection);
}

/// A vhost's message statistics and byte counts are its channels' and connections', closed
/// ones included; its message counts come with rates; traffic across two samples of the
/// statistics gives rates above zero.
#[test]
fn a_vhost_counts_its_traffic() {
    let broker = Broker::start(&["--storage", "memory"]);
    let addr = broker.addr("http").to_owned();
    assert_eq!(guest(&addr, "PUT", "/api/vhosts/busy", "{}").status, 201);
    let all = r#"{"configure":".*","write":".*","read":".*"}"#;
    assert_eq!(guest(&addr, "PUT", "/api/permissions/busy/guest", all).status, 201);
    let quiet = guest(&addr, "GET", "/api/vhosts/busy", "").json();
    assert!(quiet.get("message_stats").is_none() && quiet.get("recv_oct").is_none(), "{quiet}");
    assert_eq!((&quiet["messages"], quiet["messages_details"]["rate"].is_number()), (&json!(0), true));

    let rt = runtime();
    let url = amqp_url(&broker, "guest", "guest", "busy");
    rt.block_on(async {
        let connection = connect_url(&url).await;
        let channel = within("channel", connection.create_channel()).await.expect("channel");
        declare(&channel, "bq", Default::default()).await;
        for body in [b"1", b"2", b"3"] {
            publish(&channel, "", "bq", body).await;
        }
        publish(&channel, "", "nowhere", b"dropped").await;
        let got = get(&channel, "bq", false).await.expect("a message");
        within("ack", got.ack(Default::default())).await.expect("ack");
        declare(&channel, "bq-empty", Default::default()).await;
        assert!(get(&channel, "bq-empty", true).await.is_none());
        within("close", connection.close(200, "bye")).await.expect("close");
    });
    let busy =
        until(&addr, "/api/vhosts/busy", |v| v["message_stats"]["ack"] == 1 && v.get("recv_oct").is_some());
    let stats = &busy["message_stats"];
    let counted = |names: &[&str]| names.iter().map(|n| stats[*n].clone()).collect::<Vec<_>>();
    assert_eq!(
        counted(&["publish", "drop_unroutable", "get", "get_empty", "deliver_get", "ack", "deliver"]),
        [json!(4), json!(1), json!(1), json!(1), json!(1), json!(1), json!(0)],
        "{stats}"
    );
    assert!(stats["publish_details"]["rate"].is_number());
    assert_eq!((&busy["messages"], &busy["messages_ready"]), (&json!(2), &json!(2)));
    let bytes = |key: &str| busy[key].as_u64().unwrap_or_default();
    assert!(bytes("recv_oct") > 0 && bytes("send_oct") > 0 && busy["recv_oct_details"]["rate"].is_number());

    // Steady traffic: rates above zero once two samples (at most 10 s apart) have seen it.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let publisher = rt.spawn(async move {
        let connection = connect_url(&url).await;
        let channel = within("channel", connection.create_channel()).await.expect("channel");
        tokio::pin!(stopped);
        loop {
            publish(&channel, "", "bq", b"tick").await;
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            }
        }
        connection
    });
    let rated = until_within(&addr, "/api/vhosts/busy", 12, |v| {
        let rate = |key: &str| v.pointer(key).and_then(serde_json::Value::as_f64).unwrap_or_default();
        rate("/message_stats/publish_details/rate") > 0.0
            && rate("/recv_oct_details/rate") > 0.0
            && rate("/messages_details/rate") > 0.0
    });
    let _ = stop.send(());
    drop(rt.block_on(publisher).expect("publisher"));
    assert!(rated["message_stats"]["publish"].as_u64().is_some_and(|n| n > 4));
}
