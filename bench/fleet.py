"""A deterministic synthetic fleet: CVE records, distinct images, finding sets, hosts.

Everything is derived from fixed seeds, so ``seed.py`` (which COPYs rows) and
``run.py`` (which posts Trivy JSON for the same images) agree on content:
the Trivy report of image ``k`` parses to exactly the findings that
``seed.py`` stored for finding set ``k``, with the same content hash.
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import trivy  # noqa: E402

SEVERITY_WEIGHTS = (("CRITICAL", 5), ("HIGH", 22), ("MEDIUM", 45), ("LOW", 23), ("UNKNOWN", 5))
ORG_WEIGHTS = (60, 20, 10, 6, 4)  # org 1 holds most hosts, so page 2,000 is a real page

_WORDS = (
    "a an the in of to for with via when while before after allows remote local attacker "
    "attackers user users crafted malicious request requests packet packets header headers "
    "buffer overflow heap stack use-after-free null pointer dereference integer underflow "
    "out-of-bounds read write memory corruption denial service crash arbitrary code execution "
    "information disclosure sensitive data leak bypass authentication authorization privilege "
    "escalation certificate validation TLS handshake parser decoder encoder function module "
    "library component versions prior through fixed issue vulnerability flaw discovered "
    "improper input validation sanitization path traversal injection command SQL cross-site "
    "scripting XML external entity deserialization untrusted resource exhaustion infinite loop "
    "regular expression race condition symlink temporary file permissions configuration default "
    "could might may cause lead result trigger via specially file network connection server client"
).split()

_PACKAGES = (
    "openssl libssl3 libcrypto3 glibc libc6 libc-bin zlib1g zlib curl libcurl4 libcurl "
    "busybox musl ncurses-base libncursesw6 libtinfo6 bash coreutils tar gzip bzip2 xz-utils "
    "liblzma5 libxml2 libxslt1.1 libexpat1 expat sqlite3 libsqlite3-0 libpcre2-8-0 pcre2 "
    "libgnutls30 gnutls libgcrypt20 libgpg-error0 libtasn1-6 libidn2-0 libssh2-1 libnghttp2-14 "
    "krb5-libs libkrb5-3 libgssapi-krb5-2 openldap libldap-2.5-0 libsystemd0 libudev1 systemd "
    "util-linux libblkid1 libmount1 libuuid1 perl perl-base python3.11 libpython3.11 "
    "python3-urllib3 python3-requests git libgit2 openssh-client dpkg apt libapt-pkg6.0 "
    "login passwd shadow libpam0g libpam-modules e2fsprogs libcom-err2 libss2 libext2fs2 "
    "libtiff6 libjpeg62-turbo libpng16-16 libwebp7 libfreetype6 libx11-6 imagemagick "
    "libde265-0 libheif1 nghttp2 libsasl2-2 libdb5.3 libgmp10 libnettle8 libhogweed6 "
    "libzstd1 libbrotli1 libunistring2 libffi8 libkeyutils1 libcap2 libseccomp2 libselinux1 "
    "golang.org/x/net golang.org/x/crypto golang.org/x/text google.golang.org/grpc "
    "github.com/docker/docker github.com/opencontainers/runc stdlib lodash minimist "
    "node-fetch axios express qs semver tough-cookie json5 ws follow-redirects jsonwebtoken "
    "org.springframework:spring-core org.springframework:spring-web "
    "com.fasterxml.jackson.core:jackson-databind org.apache.logging.log4j:log4j-core "
    "io.netty:netty-codec-http org.yaml:snakeyaml commons-io:commons-io "
    "requests urllib3 cryptography pyyaml jinja2 werkzeug pillow setuptools certifi idna"
).split()

_REPOS = (
    "nginx", "redis", "postgres", "mysql", "mariadb", "mongo", "memcached", "rabbitmq",
    "elasticsearch", "kibana", "logstash", "grafana/grafana", "prom/prometheus",
    "prom/node-exporter", "prom/alertmanager", "traefik", "haproxy", "httpd", "caddy",
    "alpine", "ubuntu", "debian", "busybox", "python", "node", "golang", "openjdk",
    "eclipse-temurin", "ruby", "php", "wordpress", "ghost", "nextcloud", "gitlab/gitlab-ce",
    "jenkins/jenkins", "sonarqube", "vault", "consul", "minio/minio", "bitnami/kafka",
    "bitnami/zookeeper", "confluentinc/cp-kafka", "quay.io/coreos/etcd",
    "quay.io/prometheus/blackbox-exporter", "ghcr.io/fluxcd/source-controller",
    "registry.k8s.io/kube-proxy", "registry.k8s.io/coredns/coredns", "registry.k8s.io/pause",
    "docker.io/calico/node", "docker.io/calico/cni", "quay.io/jetstack/cert-manager-controller",
    "fluent/fluent-bit", "fluent/fluentd", "jaegertracing/all-in-one", "otel/opentelemetry-collector",
    "keycloak/keycloak", "registry.example.com:5000/payments/api",
    "registry.example.com:5000/payments/worker", "registry.example.com:5000/billing/invoice-svc",
    "ghcr.io/acme/checkout-web", "ghcr.io/acme/checkout-api", "ghcr.io/acme/search-indexer",
    "ghcr.io/acme/recommendation-engine", "ghcr.io/acme/notification-dispatcher",
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/platform/auth-gateway",
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/platform/user-profile",
    "123456789012.dkr.ecr.eu-west-1.amazonaws.com/data/etl-runner",
    "europe-docker.pkg.dev/acme-prod/ml/feature-store",
    "europe-docker.pkg.dev/acme-prod/ml/model-server",
    "acmecr.azurecr.io/shop/cart", "acmecr.azurecr.io/shop/catalog", "acmecr.azurecr.io/shop/orders",
)
_TAG_SUFFIXES = ("", "-alpine", "-slim", "-bookworm", "-alpine3.19", "-jammy", "-ubi9")
_ROLES = ("web", "api", "db", "cache", "worker", "batch", "k8s-node", "edge", "build", "mon")
_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1")


def _text(rng, low, high):
    words, size = [], 0
    target = rng.randint(low, high)
    while size < target:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    text = " ".join(words)
    return text[0].upper() + text[1:] + "."


class CvePool:
    """Vulnerability records shared by many images, as in the real world."""

    def __init__(self, size=30000, seed=42):
        rng = random.Random(seed)
        names = [s for s, _ in SEVERITY_WEIGHTS]
        weights = [w for _, w in SEVERITY_WEIGHTS]
        self.records = []
        for i in range(size):
            year = rng.randint(2014, 2025)
            self.records.append((
                f"CVE-{year}-{1000 + i * 7 % 98000 + rng.randint(0, 9):d}",
                rng.choice(_PACKAGES),
                rng.choices(names, weights)[0],
                _text(rng, 25, 110),
                _text(rng, 120, 1400),
                rng.random() < 0.7,
            ))


def _version(rng):
    return f"{rng.randint(0, 12)}.{rng.randint(0, 40)}.{rng.randint(0, 30)}-{rng.randint(1, 9)}"


def images(count):
    """``count`` distinct (name, tag, image_id) images, deterministic."""
    rng = random.Random(7)
    out, seen = [], set()
    while len(out) < count:
        repo = rng.choice(_REPOS)
        tag = f"{rng.randint(1, 17)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}{rng.choice(_TAG_SUFFIXES)}"
        if (repo, tag) in seen:
            continue
        seen.add((repo, tag))
        out.append((repo, tag, f"sha256:{rng.getrandbits(256):064x}"))
    return out


def vulnerabilities(pool, k, size=None, nonce=None):
    """The Trivy ``Vulnerabilities`` entries of image ``k``, grouped by target.

    ``nonce`` makes every CVE id unique to one call: findings never seen before.
    """
    rng = random.Random(100003 * (k + 1))
    n = size if size is not None else (1000 if k == 0 else rng.randint(50, 1000))
    targets = (f"{k} (debian 12.5)", "usr/local/lib/node_modules", "app/requirements.txt")
    by_target = {t: [] for t in targets}
    keys = set()
    while len(keys) < n:
        cve, pkg, sev, title, desc, fixed = pool.records[rng.randrange(len(pool.records))]
        if nonce is not None:
            cve = f"{cve}-{nonce}-{len(keys)}"
        installed = _version(rng)
        target = targets[0] if rng.random() < 0.7 else rng.choice(targets[1:])
        key = (cve, pkg, installed, target)
        if key in keys:
            continue
        keys.add(key)
        by_target[target].append({
            "VulnerabilityID": cve,
            "PkgID": f"{pkg}@{installed}",
            "PkgName": pkg,
            "PkgIdentifier": {"PURL": f"pkg:deb/debian/{pkg}@{installed}?arch=amd64"},
            "InstalledVersion": installed,
            "FixedVersion": _version(rng) if fixed else "",
            "Status": "fixed" if fixed else "affected",
            "Layer": {"DiffID": f"sha256:{rng.getrandbits(256):064x}"},
            "SeveritySource": "nvd",
            "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}",
            "DataSource": {"ID": "debian", "Name": "Debian Security Tracker",
                           "URL": "https://salsa.debian.org/security-tracker-team/"},
            "Title": title,
            "Description": desc,
            "Severity": sev,
            "CweIDs": [f"CWE-{rng.randint(20, 900)}"],
            "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                             "V3Score": round(rng.uniform(1, 10), 1)}},
            "References": [f"https://nvd.nist.gov/vuln/detail/{cve}",
                           f"https://security-tracker.debian.org/tracker/{cve}"],
            "PublishedDate": "2024-03-12T17:15:07.7Z",
            "LastModifiedDate": "2024-06-10T19:15:52.36Z",
        })
    return by_target


def report(pool, k, image, created_at="2026-02-09T10:30:00Z", size=None, nonce=None):
    """A ``trivy image -f json`` report (schema 2) of image ``k``."""
    name, tag, image_id = image
    results = []
    for target, vulns in vulnerabilities(pool, k, size, nonce).items():
        cls = "os-pkgs" if "debian" in target else "lang-pkgs"
        results.append({"Target": target, "Class": cls,
                        "Type": "debian" if cls == "os-pkgs" else "npm",
                        "Vulnerabilities": vulns})
    return {
        "SchemaVersion": 2, "CreatedAt": created_at,
        "ArtifactName": f"{name}:{tag}", "ArtifactType": "container_image",
        "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}, "ImageID": image_id,
                     "RepoTags": [f"{name}:{tag}"], "DiffIDs": []},
        "Results": results,
        "Trivy": {"Version": "0.58.1"},
    }


def parsed(pool, k, size=None):
    """The normalized findings of image ``k``, exactly as the service parses them."""
    doc = {"Results": [{"Target": t, "Vulnerabilities": v}
                       for t, v in vulnerabilities(pool, k, size).items()]}
    return trivy.parse_report(doc)


def hostname(i, org):
    rng = random.Random(i)
    return (f"{rng.choice(_ROLES)}-{rng.choice(('prod', 'stage', 'dev'))}-{i:05d}"
            f".{rng.choice(_REGIONS)}.org{org}.internal")
