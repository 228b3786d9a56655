// Public application Dockerfiles — multi-stage builds with COPY --from by index and by name,
// ARG before FROM with build-arg overrides and ${VAR:-x}/${VAR:+x}, the `# escape=` directive,
// SHELL, HEALTHCHECK, .dockerignore and ADD of a local archive — each rebuilt on the busybox base
// with the original's instruction forms and compared with docker build: file tree, run-time
// config and history must be the same (test::check_same_as_docker).
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/docker_compare.h"
#include "tests/support/root.h"
#include "tests/support/run_command.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

// "name" and "tag" of the shared base, for Dockerfiles that build the FROM line out of ARGs.
std::pair<std::string, std::string> split_base(const test::BuildProject& p) {
  auto colon = p.base.rfind(':');
  return {p.base.substr(0, colon), p.base.substr(colon + 1)};
}

}  // namespace

// Modelled on grafana/grafana Dockerfile (go, node and final stages; COPY --from=0 / --from=1).
TEST_CASE("public Dockerfile: grafana (COPY --from by stage index, ARG defaults in quotes, ENV pairs over continuations)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("go.mod", "module github.com/grafana/grafana\n");
  p.file("go.sum", "");
  p.file("pkg/main.go", "package main\n");
  p.file("build.go", "package main\n");
  p.file("package.json", "{\"name\": \"grafana\"}\n");
  p.file("yarn.lock", "# yarn lockfile v1\n");
  p.file("public/index.html", "<html></html>\n");
  p.file("conf/sample.ini", "[paths]\n");
  p.file("conf/ldap.toml", "[[servers]]\n");
  p.file("tools/phantomjs/render.js", "// render\n");
  p.executable("packaging/docker/run.sh", "#!/bin/sh\nexec grafana-server \"$@\"\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(# Golang build container
FROM {BASE}

ENV GOPATH /go
WORKDIR $GOPATH/src/github.com/grafana/grafana

COPY go.mod go.sum ./
COPY pkg pkg
COPY build.go build.go
COPY package.json package.json

RUN mkdir -p bin/linux-amd64 && \
    printf '#!/bin/sh\necho server\n' > bin/linux-amd64/grafana-server && \
    printf '#!/bin/sh\necho cli\n' > bin/linux-amd64/grafana-cli && \
    chmod 755 bin/linux-amd64/*

# Node build container
FROM {BASE}

WORKDIR /usr/src/app/

COPY package.json yarn.lock ./
COPY public public

ENV NODE_ENV production
RUN mkdir -p tools && echo "$NODE_ENV" > public/build.txt && echo grunt > tools/grunt.txt

# Final container
FROM {BASE}

LABEL maintainer="Grafana team <hello@grafana.com>"

ARG GF_UID="472"
ARG GF_GID="472"

ENV PATH=/usr/share/grafana/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GF_PATHS_CONFIG="/etc/grafana/grafana.ini" \
    GF_PATHS_DATA="/var/lib/grafana" \
    GF_PATHS_HOME="/usr/share/grafana" \
    GF_PATHS_LOGS="/var/log/grafana" \
    GF_PATHS_PLUGINS="/var/lib/grafana/plugins" \
    GF_PATHS_PROVISIONING="/etc/grafana/provisioning"

WORKDIR $GF_PATHS_HOME

COPY conf ./conf

RUN mkdir -p "$GF_PATHS_HOME/.aws" && \
    echo "grafana:x:$GF_GID:" >> /etc/group && \
    echo "grafana:x:$GF_UID:$GF_GID::/home/grafana:/bin/false" >> /etc/passwd && \
    mkdir -p "$GF_PATHS_PROVISIONING/datasources" \
             "$GF_PATHS_PROVISIONING/dashboards" \
             "$GF_PATHS_PROVISIONING/notifiers" \
             "$GF_PATHS_LOGS" \
             "$GF_PATHS_PLUGINS" \
             "$GF_PATHS_DATA" && \
    cp "$GF_PATHS_HOME/conf/sample.ini" "$GF_PATHS_CONFIG" && \
    cp "$GF_PATHS_HOME/conf/ldap.toml" /etc/grafana/ldap.toml && \
    chown -R grafana:grafana "$GF_PATHS_DATA" "$GF_PATHS_HOME/.aws" "$GF_PATHS_LOGS" "$GF_PATHS_PLUGINS" "$GF_PATHS_PROVISIONING" && \
    chmod 777 -R "$GF_PATHS_DATA" "$GF_PATHS_HOME/.aws" "$GF_PATHS_LOGS" "$GF_PATHS_PLUGINS" "$GF_PATHS_PROVISIONING"

COPY --from=0 /go/src/github.com/grafana/grafana/bin/linux-amd64/grafana-server /go/src/github.com/grafana/grafana/bin/linux-amd64/grafana-cli ./bin/
COPY --from=1 /usr/src/app/public ./public
COPY --from=1 /usr/src/app/tools ./tools
COPY tools/phantomjs/render.js ./tools/phantomjs/render.js

EXPOSE 3000

COPY ./packaging/docker/run.sh /run.sh

#USER grafana
ENTRYPOINT [ "/run.sh" ]
)DF"));
  test::check_same_as_docker(p, "public-grafana:1");
}

// Modelled on sh4d3s/go-websocket Dockerfile (ADD . /src in a builder, shell-form ENTRYPOINT).
TEST_CASE("public Dockerfile: go-websocket (ADD . of the context, COPY --from=builder into WORKDIR, shell-form ENTRYPOINT)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("main.go", "package main\n\nfunc main() {}\n");
  p.file("static/index.html", "<html>ws</html>\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE} AS builder
ADD . /src
RUN cd /src && cat main.go > goapp && chmod 755 goapp

FROM {BASE}
WORKDIR /app
COPY --from=builder /src/goapp /app/
ENTRYPOINT ./goapp
)DF"));
  test::check_same_as_docker(p, "public-go-websocket:1");
}

// Modelled on CommanderCRM/AudioApp audioinfra/Dockerfile (a venv built in one stage, copied whole).
TEST_CASE("public Dockerfile: python venv (lower-case `as`, LABEL on the builder, COPY --from of a whole tree with links)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("requirements.txt", "fastapi==0.110.0\nuvicorn==0.29.0\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(# first stage - install the dependencies
FROM {BASE} as builder
LABEL stage=intermediate

WORKDIR /app

ENV PYTHONDONTWRITEBYTECODE 1
ENV PYTHONUNBUFFERED 1

RUN mkdir -p /opt/venv/bin /opt/venv/lib/python3.10/site-packages && \
    ln -s /usr/local/bin/python3 /opt/venv/bin/python && ln -s python /opt/venv/bin/python3 && \
    printf 'home = /usr/local/bin\n' > /opt/venv/pyvenv.cfg
ENV PATH="/opt/venv/bin:$PATH"

COPY requirements.txt .
RUN while read -r req; do mkdir -p "/opt/venv/lib/python3.10/site-packages/${req%%==*}"; \
    echo "${req#*==}" > "/opt/venv/lib/python3.10/site-packages/${req%%==*}/VERSION"; done < requirements.txt

# second stage - take the venv from the first one and get ready to run
FROM {BASE}

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app

ENV PATH="/opt/venv/bin:$PATH"

ENTRYPOINT [ "/bin/sh" ]
)DF"));
  test::check_same_as_docker(p, "public-python-venv:1");
}

// Modelled on blackmindos/hello-word dockerfile (ARG VERSION before FROM, redeclared after it).
TEST_CASE("public Dockerfile: hello-word (ARG before FROM, redeclared ARG, ${V:-x} and ${V:+x}, --build-arg override)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  auto [name, tag] = split_base(p);
  p.file("Dockerfile", "ARG VERSION=" + tag + "\nARG IMAGE=" + name + "\n" + R"DF(FROM ${IMAGE}:$VERSION
ARG VERSION
ARG CHANNEL
ENV MSG "Hello Wolrd !!"
ENV TAG=${VERSION:+v}${VERSION} CHANNEL=${CHANNEL:-stable} EXTRA=${CHANNEL:+set} QUOTED="a \"b\" c" ESC=\$HOME
LABEL org.label-schema.version="$VERSION" channel=${CHANNEL:-stable} "description with spaces"="it's \"quoted\""
RUN echo $VERSION > /version && echo "${CHANNEL:-none}" > /channel
WORKDIR /opt
RUN echo $VERSION
ENTRYPOINT ["sh"]
CMD ["-c","echo $MSG"]
)DF");
  SUBCASE("defaults") { test::check_same_as_docker(p, "public-hello:1"); }
  SUBCASE("--build-arg CHANNEL=edge") { test::check_same_as_docker(p, "public-hello:2", {"--build-arg", "CHANNEL=edge"}); }
}

// Modelled on the `# escape=`` ` Dockerfiles of PowerShell's images (e.g. Eliasj42/arc-windows-runner
// Dockerfile, yaningo/79486 Dockerfile): ARGs for FROM first, backtick continuations, a LABEL
// pair split over lines after a comma, backslashes that are plain characters.
TEST_CASE("public Dockerfile: escape=` (backtick continuations, literal backslashes, ARG-built FROM with AS)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  auto [name, tag] = split_base(p);
  p.file("Dockerfile", "# escape=`\n\n# Args used by from statements must be defined here:\nARG InstallerRepo=" + name +
                           "\nARG InstallerVersion=" + tag + R"DF(

# Use server core as an installer container to extract PowerShell,
# As this is a multi-stage build, this stage will eventually be thrown away
FROM ${InstallerRepo}:$InstallerVersion  AS installer-env

# Arguments for installing PowerShell, must be defined in the container they are used
ARG PS_VERSION=7.1.3

ARG PS_PACKAGE_URL=https://github.com/PowerShell/PowerShell/releases/download/v$PS_VERSION/PowerShell-$PS_VERSION-win-x64.zip

RUN mkdir -p /PowerShell && `
    echo "$PS_PACKAGE_URL" > /PowerShell/url.txt && `
    echo C:\PowerShell\pwsh.exe > /PowerShell/path.txt

FROM ${InstallerRepo}:${InstallerVersion}
LABEL Readme.md="https://github.com/PowerShell/PowerShell/blob/master/docker/README.md",`
      Description="This Dockerfile will install the latest release of PS."

ENV ProgramFiles="C:\Program Files" `
    PSModuleAnalysisCachePath="C:\Users\Public\AppData\Local\Microsoft\Windows\PowerShell\docker\ModuleAnalysisCache" `
    POWERSHELL_TELEMETRY_OPTOUT=1 `
    BACKTICK=a``b

COPY --from=installer-env ["/PowerShell", "/PowerShell/"]

WORKDIR C:/
CMD ["sh", "-c", "cat /PowerShell/path.txt"]
)DF");
  test::check_same_as_docker(p, "public-escape:1");
}

// Modelled on wkaluza/personal_tools installer_scripts/docker_test_ubuntu_setup/test.dockerfile.
TEST_CASE("public Dockerfile: SHELL exec form, ARG-derived ENV, COPY to an ARG path, unindented continuation args") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.executable("create_user_workspace.sh",
             "#!/bin/sh\nset -eu\n"
             "echo \"$3:x:$2:\" >> /etc/group\n"
             "echo \"$3:x:$1:$2::/home/$3:/bin/sh\" >> /etc/passwd\n"
             "mkdir -p \"$4\" && chown -R \"$1:$2\" \"/home/$3\"\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE}

ARG UID=1234
ARG GID=2345
ARG USERNAME=tester

ARG _HOME="/home/$USERNAME"
ENV WORKSPACE="$_HOME/workspace"

ARG _DOCKER_BUILD_TEMP_ROOT_DIR="/docker_build_temp"

SHELL ["/bin/ash", "-eu", "-o", "pipefail", "-c"]

COPY create_user_workspace.sh $_DOCKER_BUILD_TEMP_ROOT_DIR/
RUN $_DOCKER_BUILD_TEMP_ROOT_DIR/create_user_workspace.sh \
$UID \
$GID \
$USERNAME \
$WORKSPACE

RUN rm -rf $_DOCKER_BUILD_TEMP_ROOT_DIR

USER $USERNAME
WORKDIR $WORKSPACE
RUN echo "$0 $-" | tr -d 'm' > shell.txt

CMD ["/bin/ash"]
)DF"));
  test::check_same_as_docker(p, "public-shell:1");
}

// Modelled on symulla/PawsOrganization dockerfile and streamr-dev/nginx Dockerfile: a static site
// copied with `COPY .` (what .dockerignore leaves) and HEALTHCHECKs with every option.
TEST_CASE("public Dockerfile: static site (COPY . with .dockerignore, HEALTHCHECK over a continuation and with all flags)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file(".dockerignore", "# build files\n.git\n*.md\nnode_modules\n**/*.tmp\nDockerfile\n.dockerignore\n");
  p.file("index.html", "<html>paws</html>\n");
  p.file("css/site.css", "body{}\n");
  p.file("css/cache.tmp", "x\n");
  p.file("img/deep/cache.tmp", "x\n");
  p.file("README.md", "# readme\n");
  p.file(".git/HEAD", "ref: refs/heads/main\n");
  p.file("node_modules/x/index.js", "\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE}
COPY . /usr/share/nginx/html
HEALTHCHECK --interval=30s --timeout=3s \
  CMD wget -qO- http://localhost:80/ >/dev/null || exit 1
EXPOSE 80
HEALTHCHECK --interval=10s --timeout=10s --start-period=10s --retries=60 CMD wget --spider -q http://localhost:80
)DF"));
  test::check_same_as_docker(p, "public-static-site:1");
}

// Modelled on johnsonfash/redis Dockerfile and mceith/oc Dockerfile (redis with a custom config).
TEST_CASE("public Dockerfile: redis (COPY to . without WORKDIR, numeric USER, exec ENTRYPOINT with a relative path)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("redis.conf", "bind 0.0.0.0\nprotected-mode no\ndir /data\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE}

RUN echo 'redis:x:999:' >> /etc/group && echo 'redis:x:999:999::/home/redis:/sbin/nologin' >> /etc/passwd
RUN mkdir -p /var/lib/redis && chown -R redis:redis /var/lib/redis
RUN mkdir -m 0770 /data && chown redis:0 /data
VOLUME /data

COPY redis.conf .
COPY redis.conf /usr/local/etc/redis/redis.conf
EXPOSE 6379
USER 999
ENTRYPOINT ["redis-server", "./redis.conf"]
CMD [ "redis-server", "/usr/local/etc/redis/redis.conf" ]
)DF"));
  test::check_same_as_docker(p, "public-redis:1");
}

// Modelled on docker-library/busybox latest/glibc/Dockerfile (FROM scratch, ADD of the rootfs
// tarball, CMD ["sh"]), with a tarball whose entries carry their own owners, modes and links.
TEST_CASE("public Dockerfile: busybox (FROM scratch, ADD of a local .tar.gz rootfs unpacked at /)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  TempDir tree;
  fs::path r = tree.path() / "rootfs";
  for (const char* d : {"bin", "etc", "home/user", "tmp", "var/spool/mail"}) fs::create_directories(r / d);
  fs::copy_file("/bin/busybox", r / "bin/busybox");
  fs::create_symlink("busybox", r / "bin/sh");
  fs::create_symlink("busybox", r / "bin/ls");
  std::ofstream(r / "etc/passwd") << "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n";
  std::ofstream(r / "etc/group") << "root:x:0:\nuser:x:1000:\n";
  fs::permissions(r / "tmp", fs::perms(01777));
  fs::permissions(r / "var/spool/mail", fs::perms(02775));
  // home/user belongs to the user, as in an image's rootfs tarball (owners are kept by ADD).
  REQUIRE(::chown((r / "home/user").c_str(), 1000, 1000) == 0);
  auto t = test::run_command({"tar", "--numeric-owner", "--mtime=@0", "--sort=name", "-czf",
                              (p.ctx / "busybox.tar.gz").string(), "-C", r.string(), "."});
  REQUIRE_MESSAGE(t.exit_code == 0, t.err);
  p.file("Dockerfile", "FROM scratch\nADD busybox.tar.gz /\nCMD [\"sh\"]\n");
  test::check_same_as_docker(p, "public-busybox:1");
}
