// Official-image Dockerfiles (docker-library and upstream projects), each rebuilt on the busybox
// base with the same instruction forms — `set -eux; \` chains with comment lines inside the
// continuation, legacy `ENV key value`, PATH built on $PATH, users written to /etc/passwd where
// the original calls adduser, the original's links, modes and owners — and compared with docker
// build: file tree, run-time config and history must be the same (test::check_same_as_docker).
// Network steps (apk, apt, wget) are replaced by busybox commands that make similar files.
#include <doctest/doctest.h>

#include <filesystem>

#include "tests/support/build_project.h"
#include "tests/support/docker_peer.h"
#include "tests/support/docker_compare.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;

namespace {

const char* kEntrypoint = "#!/bin/sh\nset -e\nexec \"$@\"\n";

}  // namespace

// Modelled on docker-library/postgres 15/bookworm/Dockerfile.
TEST_CASE("public Dockerfile: postgres (comments inside continuations, ENV PATH $PATH:..., ln -sT, STOPSIGNAL)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.executable("docker-entrypoint.sh", kEntrypoint);
  p.executable("docker-ensure-initdb.sh", "#!/bin/sh\necho initdb\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(#
# NOTE: THIS DOCKERFILE IS GENERATED VIA "apply-templates.sh"
#
# PLEASE DO NOT EDIT IT DIRECTLY.
#

FROM {BASE}

# explicitly set user/group IDs
RUN set -eux; \
{T}echo 'postgres:x:999:' >> /etc/group; \
# https://salsa.debian.org/postgresql/postgresql-common/blob/997d842ee744687d99a2b2d95c1083a2615c79e8/debian/postgresql-common.postinst#L32-35
{T}echo 'postgres:x:999:999::/var/lib/postgresql:/bin/sh' >> /etc/passwd; \
# also create the postgres user's home directory with appropriate permissions
# see https://github.com/docker-library/postgres/issues/274
{T}mkdir -p /var/lib/postgresql; chown postgres:postgres /var/lib/postgresql; chmod 1777 /var/lib/postgresql

# grab gosu for easy step-down from root
ENV GOSU_VERSION 1.17
RUN set -eux; \
{T}mkdir -p /usr/local/bin; \
{T}printf '#!/bin/sh\nshift\nexec "$@"\n' > /usr/local/bin/gosu; \
{T}chmod +x /usr/local/bin/gosu; \
{T}gosu nobody true

ENV LANG en_US.utf8

RUN mkdir /docker-entrypoint-initdb.d

ENV PG_MAJOR 15
ENV PATH $PATH:/usr/lib/postgresql/$PG_MAJOR/bin

ENV PG_VERSION 15.8-1.pgdg120+1

RUN set -ex; \
{T}\
# see note below about "*.pyc" files
{T}export PYTHONDONTWRITEBYTECODE=1; \
{T}\
{T}dpkgArch="$(uname -m)"; \
{T}case "$dpkgArch" in \
{T}{T}x86_64 | aarch64) \
# arches officialy built by upstream
{T}{T}{T}mkdir -p "/usr/lib/postgresql/$PG_MAJOR/bin"; \
{T}{T}{T};; \
{T}{T}*) \
# we're on an architecture upstream doesn't officially build for
{T}{T}{T}mkdir -p "/usr/lib/postgresql/$PG_MAJOR/bin"; \
{T}{T}{T};; \
{T}esac; \
{T}\
{T}mkdir -p "/usr/share/postgresql/$PG_MAJOR"; \
{T}echo "#listen_addresses = 'localhost'{T}{T}# what IP address(es) to listen on;" > /usr/share/postgresql/postgresql.conf.sample; \
{T}printf '#!/bin/sh\necho "postgres (PostgreSQL) %s"\n' "$PG_VERSION" > "/usr/lib/postgresql/$PG_MAJOR/bin/postgres"; \
{T}chmod 755 "/usr/lib/postgresql/$PG_MAJOR/bin/postgres"; \
{T}postgres --version

# make the sample config easier to munge (and "correct by default")
RUN set -eux; \
{T}cp -v /usr/share/postgresql/postgresql.conf.sample /usr/share/postgresql/postgresql.conf.sample.dpkg; \
{T}ln -sv ../postgresql.conf.sample "/usr/share/postgresql/$PG_MAJOR/"; \
{T}sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" /usr/share/postgresql/postgresql.conf.sample; \
{T}grep -F "listen_addresses = '*'" /usr/share/postgresql/postgresql.conf.sample

RUN mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql && chmod 3777 /var/run/postgresql

ENV PGDATA /var/lib/postgresql/data
# this 1777 will be replaced by 0700 at runtime (allows semi-arbitrary "--user" values)
RUN mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 1777 "$PGDATA"
VOLUME /var/lib/postgresql/data

COPY docker-entrypoint.sh docker-ensure-initdb.sh /usr/local/bin/
RUN ln -sT docker-ensure-initdb.sh /usr/local/bin/docker-enforce-initdb.sh
ENTRYPOINT ["docker-entrypoint.sh"]

# We set the default STOPSIGNAL to SIGINT, which corresponds to what PostgreSQL
# calls "Fast Shutdown mode".
#
STOPSIGNAL SIGINT
#
# An additional setting that is recommended for all users regardless of this
# value is the runtime "--stop-timeout".

EXPOSE 5432
CMD ["postgres"]
)DF"));
  test::check_same_as_docker(p, "public-postgres:1");
}

// Modelled on docker-library/memcached 1/alpine/Dockerfile.
TEST_CASE("public Dockerfile: memcached (RUN with a trailing # comment, relative symlink, USER after ENTRYPOINT)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.executable("docker-entrypoint.sh", kEntrypoint);
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE}

# add our user and group first to make sure their IDs get assigned consistently, regardless of whatever dependencies get added
RUN set -eux; \
{T}echo 'memcache:x:11211:' >> /etc/group; \
{T}echo 'memcache:x:11211:11211:Linux User,,,:/home/memcache:/bin/sh' >> /etc/passwd; \
{T}mkdir -p /home/memcache; chown memcache:memcache /home/memcache

ENV MEMCACHED_VERSION 1.6.25
ENV MEMCACHED_URL https://memcached.org/files/memcached-1.6.25.tar.gz
ENV MEMCACHED_SHA1 8825b31936100c90439d2447182ca2d49ecca9a0

RUN set -eux; \
{T}\
{T}mkdir -p /usr/src/memcached; \
{T}echo "$MEMCACHED_URL" > /usr/src/memcached/memcached.tar.gz; \
{T}sha1sum /usr/src/memcached/memcached.tar.gz; \
{T}\
{T}cd /usr/src/memcached; \
{T}nproc="$(nproc)"; \
{T}mkdir -p /usr/local/bin /usr/local/share/man/man1; \
{T}printf '#!/bin/sh\necho "memcached %s"\n' "$MEMCACHED_VERSION" > /usr/local/bin/memcached; \
{T}chmod 755 /usr/local/bin/memcached; \
{T}echo '.TH MEMCACHED 1' > /usr/local/share/man/man1/memcached.1; \
{T}\
{T}cd /; \
{T}rm -rf /usr/src/memcached; \
{T}\
{T}memcached -V

COPY docker-entrypoint.sh /usr/local/bin/
RUN ln -s usr/local/bin/docker-entrypoint.sh /entrypoint.sh # backwards compat
ENTRYPOINT ["docker-entrypoint.sh"]

USER memcache
EXPOSE 11211
CMD ["memcached"]
)DF"));
  test::check_same_as_docker(p, "public-memcached:1");
}

// Modelled on docker-library/haproxy 3.0/alpine/Dockerfile.
TEST_CASE("public Dockerfile: haproxy (a quoted value spanning continuation lines, eval, STOPSIGNAL SIGUSR1, WORKDIR after USER)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.executable("docker-entrypoint.sh", kEntrypoint);
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE}

# roughly, https://git.alpinelinux.org/aports/tree/main/haproxy/haproxy.pre-install?h=3.12-stable
RUN set -eux; \
{T}echo 'haproxy:x:99:' >> /etc/group; \
{T}echo 'haproxy:x:99:99:Linux User,,,:/var/lib/haproxy:/sbin/nologin' >> /etc/passwd; \
{T}mkdir -p /var/lib/haproxy; \
{T}chown haproxy:haproxy /var/lib/haproxy

ENV HAPROXY_VERSION 3.0-dev9
ENV HAPROXY_URL https://www.haproxy.org/download/3.0/src/devel/haproxy-3.0-dev9.tar.gz
ENV HAPROXY_SHA256 5d9363667fd2486493165c947e62a701c4b82b261b7dff8ded5d3a1204a784df

# see https://sources.debian.net/src/haproxy/jessie/debian/rules/ for some helpful navigation of the possible "make" arguments
RUN set -eux; \
{T}\
{T}makeOpts=' \
{T}{T}TARGET=linux-musl \
{T}{T}USE_GETADDRINFO=1 \
{T}{T}USE_LUA=1 LUA_INC=/usr/include/lua5.4 LUA_LIB=/usr/lib/lua5.4 \
{T}{T}USE_OPENSSL=1 \
{T}{T}USE_PCRE2=1 USE_PCRE2_JIT=1 \
{T}{T}USE_PROMEX=1 \
{T}{T}\
{T}{T}EXTRA_OBJS=" \
{T}{T}" \
{T}'; \
{T}\
{T}nproc="$(nproc)"; \
{T}mkdir -p /usr/local/etc/haproxy/errors /usr/local/sbin; \
{T}eval "printf '%s\n' $makeOpts" > /usr/local/etc/haproxy/make-opts; \
{T}for code in 400 403 408 500 502 503 504; do echo "HTTP/1.0 $code" > "/usr/local/etc/haproxy/errors/$code.http"; done; \
{T}printf '#!/bin/sh\necho "HAProxy version %s"\n' "$HAPROXY_VERSION" > /usr/local/sbin/haproxy; \
{T}chmod 755 /usr/local/sbin/haproxy; \
{T}\
# smoke test
{T}haproxy -v

# https://www.haproxy.org/download/1.8/doc/management.txt
# "4. Stopping and restarting HAProxy"
STOPSIGNAL SIGUSR1

COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]

USER haproxy

# https://github.com/docker-library/haproxy/issues/200
WORKDIR /var/lib/haproxy

CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
)DF"));
  test::check_same_as_docker(p, "public-haproxy:1");
}

// Modelled on prometheus/prometheus Dockerfile (the busybox-based image).
TEST_CASE("public Dockerfile: prometheus (aligned COPY columns, dir/ sources, ln -s of two sources, JSON CMD over continuations)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.executable("prometheus", "#!/bin/sh\necho prometheus \"$@\"\n");
  p.executable("promtool", "#!/bin/sh\necho promtool\n");
  p.file("documentation/examples/prometheus.yml", "global:\n  scrape_interval: 15s\n");
  p.file("console_libraries/menu.lib", "{{ define \"menu\" }}\n");
  p.file("console_libraries/prom.lib", "{{ define \"prom\" }}\n");
  p.file("consoles/index.html.example", "<html></html>\n");
  p.file("consoles/node.html", "<h1>node</h1>\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM        {BASE}
LABEL maintainer "The Prometheus Authors <prometheus-developers@googlegroups.com>"

COPY prometheus                             /bin/prometheus
COPY promtool                               /bin/promtool
COPY documentation/examples/prometheus.yml  /etc/prometheus/prometheus.yml
COPY console_libraries/                     /usr/share/prometheus/console_libraries/
COPY consoles/                              /usr/share/prometheus/consoles/

RUN ln -s /usr/share/prometheus/console_libraries /usr/share/prometheus/consoles/ /etc/prometheus/ && \
    echo 'prometheus:x:1000:' >> /etc/group && \
    echo 'prometheus:x:1000:1000:Linux User,,,:/home/prometheus:/bin/sh' >> /etc/passwd && \
    mkdir -p /prometheus && \
    chown -R prometheus:prometheus /etc/prometheus /prometheus

EXPOSE     9090
VOLUME     [ "/prometheus" ]
WORKDIR    /prometheus
ENTRYPOINT [ "/bin/prometheus" ]
USER       prometheus
CMD        [ "-config.file=/etc/prometheus/prometheus.yml", \
             "-storage.local.path=/prometheus", \
             "-web.console.libraries=/usr/share/prometheus/console_libraries", \
             "-web.console.templates=/usr/share/prometheus/consoles" ]
)DF"));
  test::check_same_as_docker(p, "public-prometheus:1");
}

// Modelled on nginxinc/docker-nginx mainline/alpine-slim/Dockerfile.
TEST_CASE("public Dockerfile: nginx (ENV with a spaced legacy value, set -x \\ chains, quoted list over lines, ln -sf to /dev)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.executable("docker-entrypoint.sh", kEntrypoint);
  p.executable("10-listen-on-ipv6-by-default.sh", "#!/bin/sh\necho ipv6\n");
  p.executable("20-envsubst-on-templates.sh", "#!/bin/sh\necho envsubst\n");
  p.executable("30-tune-worker-processes.sh", "#!/bin/sh\necho workers\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(#
# NOTE: THIS DOCKERFILE IS GENERATED VIA "update.sh"
#
# PLEASE DO NOT EDIT IT DIRECTLY.
#
FROM {BASE}

LABEL maintainer="NGINX Docker Maintainers <docker-maint@nginx.com>"

ENV NGINX_VERSION 1.23.3
ENV PKG_RELEASE   1

RUN set -x \
# create nginx user/group first, to be consistent throughout docker variants
    && echo 'nginx:x:101:nginx' >> /etc/group \
    && echo 'nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin' >> /etc/passwd \
    && apkArch="$(uname -m)" \
    && nginxPackages=" \
        nginx=${NGINX_VERSION}-r${PKG_RELEASE} \
    " \
    && case "$apkArch" in \
        x86_64|aarch64) \
# arches officially built by upstream
            set -x \
            && KEY_SHA512="e09fa32f0a0eab2b879ccbbc4d0e4fb9751486eedda75e35fac65802cc9faa266425edf83e261137a2f4d16281ce2c1a5f4502930fe75154723da014214f0655" \
            && mkdir -p /etc/apk/keys \
            && if echo "$KEY_SHA512" | grep -q '^e09f'; then \
                echo "key verification succeeded!"; \
                echo "$nginxPackages" > /etc/apk/keys/packages; \
            else \
                echo "key verification failed!"; \
                exit 1; \
            fi \
            ;; \
        *) \
            set -x \
            && mkdir -p /etc/apk/keys \
            && echo "$nginxPackages" > /etc/apk/keys/packages \
            ;; \
    esac \
    && mkdir -p /var/log/nginx /var/cache/nginx /etc/nginx/conf.d /usr/local/bin \
    && echo 'server { listen 80; }' > /etc/nginx/conf.d/default.conf \
    && chown nginx:nginx /var/cache/nginx \
# Bring in tzdata so users could set the timezones through the environment
# variables
    && mkdir -p /usr/share/zoneinfo && echo UTC > /usr/share/zoneinfo/UTC \
# forward request and error logs to docker log collector
    && ln -sf /dev/stdout /var/log/nginx/access.log \
    && ln -sf /dev/stderr /var/log/nginx/error.log \
# create a docker-entrypoint.d directory
    && mkdir /docker-entrypoint.d

COPY docker-entrypoint.sh /
COPY 10-listen-on-ipv6-by-default.sh /docker-entrypoint.d
COPY 20-envsubst-on-templates.sh /docker-entrypoint.d
COPY 30-tune-worker-processes.sh /docker-entrypoint.d
ENTRYPOINT ["/docker-entrypoint.sh"]

EXPOSE 80

STOPSIGNAL SIGQUIT

CMD ["nginx", "-g", "daemon off;"]
)DF"));
  test::check_same_as_docker(p, "public-nginx:1");
}

// Modelled on nodejs/docker-node 18/alpine3.18/Dockerfile.
TEST_CASE("public Dockerfile: node (indented # comments inside a && chain, case on ${x##*-}, yarn symlinks)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.executable("docker-entrypoint.sh", "#!/bin/sh\nset -e\nif [ \"${1#-}\" != \"${1}\" ]; then set -- node \"$@\"; fi\nexec \"$@\"\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE}

ENV NODE_VERSION 18.18.1

RUN echo 'node:x:1000:' > /etc/group.new \
    && grep -v '^app:' /etc/group >> /etc/group.new && mv /etc/group.new /etc/group \
    && grep -v '^app:' /etc/passwd > /etc/passwd.new && mv /etc/passwd.new /etc/passwd \
    && echo 'node:x:1000:1000:Linux User,,,:/home/node:/bin/sh' >> /etc/passwd \
    && mkdir -p /home/node && chown node:node /home/node \
    && ARCH= && alpineArch="$(uname -m)" \
      && case "${alpineArch##*-}" in \
        x86_64) \
          ARCH='x64' \
          CHECKSUM="a204e380b2bf5386b7a0142b8fbb6bf99e2ec74a66b48c59fc47869ef0602e8e" \
          ;; \
        *) ;; \
      esac \
  && if [ -n "${CHECKSUM}" ]; then \
    set -eu; \
    mkdir -p /usr/local/bin /usr/local/lib/node_modules/npm/bin; \
    printf '#!/bin/sh\necho v%s\n' "$NODE_VERSION" > /usr/local/bin/node \
      && chmod 755 /usr/local/bin/node \
      && ln -s /usr/local/bin/node /usr/local/bin/nodejs; \
  else \
    echo "Building from source" \
    # backup build
    && mkdir -p /usr/local/bin /usr/local/lib/node_modules/npm/bin \
    # gpg keys listed at https://github.com/nodejs/node#release-keys
    && printf '#!/bin/sh\necho v%s\n' "$NODE_VERSION" > /usr/local/bin/node \
    && chmod 755 /usr/local/bin/node \
    && ln -s /usr/local/bin/node /usr/local/bin/nodejs; \
  fi \
  && printf '#!/bin/sh\necho 9.8.1\n' > /usr/local/lib/node_modules/npm/bin/npm-cli.js \
  && chmod 755 /usr/local/lib/node_modules/npm/bin/npm-cli.js \
  && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
  # smoke tests
  && node --version \
  && npm --version

ENV YARN_VERSION 1.22.19

RUN mkdir -p /opt/yarn-v$YARN_VERSION/bin \
  # use pre-existing gpg directory, see https://github.com/nodejs/docker-node/pull/1895#issuecomment-1550389150
  && for key in \
    6A010C5166006599AA17F08146C2130DFD2497F5 \
  ; do \
    echo "$key" >> /opt/yarn-v$YARN_VERSION/KEYS ; \
  done \
  && printf '#!/bin/sh\necho %s\n' "$YARN_VERSION" > /opt/yarn-v$YARN_VERSION/bin/yarn \
  && cp /opt/yarn-v$YARN_VERSION/bin/yarn /opt/yarn-v$YARN_VERSION/bin/yarnpkg \
  && chmod 755 /opt/yarn-v$YARN_VERSION/bin/yarn /opt/yarn-v$YARN_VERSION/bin/yarnpkg \
  && ln -s /opt/yarn-v$YARN_VERSION/bin/yarn /usr/local/bin/yarn \
  && ln -s /opt/yarn-v$YARN_VERSION/bin/yarnpkg /usr/local/bin/yarnpkg \
  # smoke test
  && yarn --version

COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]

CMD [ "node" ]
)DF"));
  test::check_same_as_docker(p, "public-node:1");
}

// Modelled on docker-library/golang 1.12/alpine3.10/Dockerfile.
TEST_CASE("public Dockerfile: golang (RUN [ ! -e ] &&, export over commented continuation lines, WORKDIR $GOPATH)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE}

# set up nsswitch.conf for Go's "netgo" implementation
# - https://github.com/golang/go/blob/go1.9.1/src/net/conf.go#L194-L275
# - docker run --rm debian:stretch grep '^hosts:' /etc/nsswitch.conf
RUN [ ! -e /etc/nsswitch.conf ] && echo 'hosts: files dns' > /etc/nsswitch.conf

ENV GOLANG_VERSION 1.12.8

RUN set -eux; \
{T}export \
# set GOROOT_BOOTSTRAP such that we can actually build Go
{T}{T}GOROOT_BOOTSTRAP="/usr/lib/go" \
# ... and set "cross-building" related vars to the installed system's values so that we create a build targeting the proper arch
{T}{T}GOOS="linux" \
{T}{T}GOARCH="$(uname -m)" \
{T}; \
{T}apkArch="$(uname -m)"; \
{T}case "$apkArch" in \
{T}{T}armhf) export GOARM='6' ;; \
{T}{T}x86) export GO386='387' ;; \
{T}esac; \
{T}\
{T}mkdir -p /usr/local/go/bin /usr/local/go/src /usr/local/go/pkg/bootstrap /usr/local/go/pkg/obj; \
{T}printf '#!/bin/sh\necho "go version go%s %s/%s"\n' "$GOLANG_VERSION" "$GOOS" "$GOARCH" > /usr/local/go/bin/go; \
{T}chmod 755 /usr/local/go/bin/go; \
{T}\
{T}rm -rf \
# https://github.com/golang/go/blob/0b30cf534a03618162d3015c8705dd2231e34703/src/cmd/dist/buildtool.go#L121-L125
{T}{T}/usr/local/go/pkg/bootstrap \
# https://golang.org/cl/82095
{T}{T}/usr/local/go/pkg/obj \
{T}; \
{T}\
{T}export PATH="/usr/local/go/bin:$PATH"; \
{T}go version

ENV GOPATH /go
ENV PATH $GOPATH/bin:/usr/local/go/bin:$PATH

RUN mkdir -p "$GOPATH/src" "$GOPATH/bin" && chmod -R 777 "$GOPATH"
WORKDIR $GOPATH
)DF"));
  test::check_same_as_docker(p, "public-golang:1");
}

// Modelled on docker-library/python 3.12/alpine3.19/Dockerfile.
TEST_CASE("public Dockerfile: python (ENV PATH /usr/local/bin:$PATH, ${V%%[a-z]*} and \\$\\$ in RUN, ln -svT loop)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(#
# NOTE: THIS DOCKERFILE IS GENERATED VIA "apply-templates.sh"
#
# PLEASE DO NOT EDIT IT DIRECTLY.
#

FROM {BASE}

# ensure local python is preferred over distribution python
ENV PATH /usr/local/bin:$PATH

# cannot remove LANG even though https://bugs.python.org/issue19846 is fixed
ENV LANG C.UTF-8

ENV GPG_KEY 7169605F62C751356D054A26A821E680E5FA6305
ENV PYTHON_VERSION 3.12.1

RUN set -eux; \
{T}\
{T}mkdir -p /usr/src/python /usr/local/bin /usr/local/lib; \
{T}echo "https://www.python.org/ftp/python/${PYTHON_VERSION%%[a-z]*}/Python-$PYTHON_VERSION.tar.xz" > /usr/src/python/url; \
{T}cd /usr/src/python; \
{T}EXTRA_CFLAGS="-DTHREAD_STACK_SIZE=0x100000"; \
{T}LDFLAGS="${LDFLAGS:--Wl},--strip-all"; \
{T}printf '%s\n' \
{T}{T}"EXTRA_CFLAGS=${EXTRA_CFLAGS:-}" \
{T}{T}"LDFLAGS=${LDFLAGS:--Wl},-rpath='\$\$ORIGIN/../lib'" \
{T}{T}"PROFILE_TASK=${PROFILE_TASK:-}" \
{T}> /usr/local/lib/python-make-flags; \
{T}for f in idle3 pydoc3 python3 python3-config; do \
{T}{T}printf '#!/bin/sh\necho "Python %s"\n' "$PYTHON_VERSION" > "/usr/local/bin/$f"; \
{T}{T}chmod 755 "/usr/local/bin/$f"; \
{T}done; \
{T}\
{T}cd /; \
{T}rm -rf /usr/src/python; \
{T}\
{T}find /usr/local -depth \
{T}{T}\( \
{T}{T}{T}\( -type d -a \( -name test -o -name tests -o -name idle_test \) \) \
{T}{T}{T}-o \( -type f -a \( -name '*.pyc' -o -name '*.pyo' -o -name 'libpython*.a' \) \) \
{T}{T}\) -exec rm -rf '{}' + \
{T}; \
{T}\
{T}python3 --version

# make some useful symlinks that are expected to exist ("/usr/local/bin/python" and friends)
RUN set -eux; \
{T}for src in idle3 pydoc3 python3 python3-config; do \
{T}{T}dst="$(echo "$src" | tr -d 3)"; \
{T}{T}[ -s "/usr/local/bin/$src" ]; \
{T}{T}[ ! -e "/usr/local/bin/$dst" ]; \
{T}{T}ln -svT "$src" "/usr/local/bin/$dst"; \
{T}done

# if this is called "PIP_VERSION", pip explodes with "ValueError: invalid truth value '<VERSION>'"
ENV PYTHON_PIP_VERSION 23.2.1
# https://github.com/pypa/get-pip
ENV PYTHON_GET_PIP_URL https://github.com/pypa/get-pip/raw/049c52c665e8c5fd1751f942316e0a5c777d304f/public/get-pip.py

CMD ["python3"]
)DF"));
  test::check_same_as_docker(p, "public-python:1");
}

// Modelled on docker-library/docker 24/cli/Dockerfile.
TEST_CASE("public Dockerfile: docker cli (COPY renaming into place, ENV k=v, case with exit 0 branch, mv -vT, ln -sv into a dir)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.executable("modprobe.sh", "#!/bin/sh\nset -eu\nexec modprobe \"$@\"\n");
  p.executable("docker-entrypoint.sh", kEntrypoint);
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE}

# ensure that nsswitch.conf is set up for Go's "netgo" implementation (which Docker explicitly uses)
RUN echo 'hosts: files dns' > /etc/nsswitch.conf && [ -e /etc/nsswitch.conf ] && grep '^hosts: files dns' /etc/nsswitch.conf

ENV DOCKER_VERSION 24.0.4

ENV DOCKER_BUILDX_VERSION 0.11.2
RUN set -eux; \
{T}\
{T}apkArch="$(uname -m)"; \
{T}case "$apkArch" in \
{T}{T}'x86_64') \
{T}{T}{T}url='https://github.com/docker/buildx/releases/download/v0.11.2/buildx-v0.11.2.linux-amd64'; \
{T}{T}{T}sha256='311568ee69715abc46163fd688e56c77ab0144ff32e116d0f293bfc3470e75b7'; \
{T}{T}{T};; \
{T}{T}'aarch64') \
{T}{T}{T}url='https://github.com/docker/buildx/releases/download/v0.11.2/buildx-v0.11.2.linux-arm64'; \
{T}{T}{T}sha256='565e36085a35bba5104f37365ba796c111338eea1a0902b3a7ff42e2e1248815'; \
{T}{T}{T};; \
{T}{T}*) echo >&2 "warning: unsupported 'docker-buildx' architecture ($apkArch); skipping"; exit 0 ;; \
{T}esac; \
{T}\
{T}printf '#!/bin/sh\necho "%s"\n' "$url" > 'docker-buildx'; \
{T}echo "$(sha256sum docker-buildx | cut -d' ' -f1) *"'docker-buildx' | sha256sum -c -; \
{T}\
{T}plugin='/usr/local/libexec/docker/cli-plugins/docker-buildx'; \
{T}mkdir -p "$(dirname "$plugin")"; \
{T}mv -vT 'docker-buildx' "$plugin"; \
{T}chmod +x "$plugin"; \
{T}\
{T}mkdir -p /usr/local/bin; \
{T}ln -sv "$plugin" /usr/local/bin/; \
{T}docker-buildx version

COPY modprobe.sh /usr/local/bin/modprobe
COPY docker-entrypoint.sh /usr/local/bin/

# https://github.com/docker-library/docker/pull/166
#   dockerd-entrypoint.sh uses DOCKER_TLS_CERTDIR for auto-generating TLS certificates
ENV DOCKER_TLS_CERTDIR=/certs
# also, ensure the directory pre-exists and has wide enough permissions for "dockerd-entrypoint.sh" to create subdirectories, even when run in "rootless" mode
RUN mkdir /certs /certs/client && chmod 1777 /certs /certs/client
# (doing both /certs and /certs/client so that if Docker does a "copy-up" into a volume defined on /certs/client, it will "do the right thing" by default in a way that still works for rootless users)

ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["sh"]
)DF"));
  test::check_same_as_docker(p, "public-docker-cli:1");
}

// Modelled on docker-library/docker 24/dind-rootless/Dockerfile.
TEST_CASE("public Dockerfile: docker dind-rootless (chmod 1777 dir, subuid lines, VOLUME on a user-owned path, USER name last)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE}

# "/run/user/UID" will be used by default as the value of XDG_RUNTIME_DIR
RUN mkdir -p /run/user && chmod 1777 /run/user

# create a default user preconfigured for running rootless dockerd
RUN set -eux; \
{T}echo 'rootless:x:1001:' >> /etc/group; \
{T}echo 'rootless:x:1001:1001:Rootless:/home/rootless:/bin/sh' >> /etc/passwd; \
{T}mkdir -p /home/rootless; chown rootless:rootless /home/rootless; \
{T}echo 'rootless:100000:65536' >> /etc/subuid; \
{T}echo 'rootless:100000:65536' >> /etc/subgid

# pre-create "/var/lib/docker" for our rootless user
RUN set -eux; \
{T}mkdir -p /home/rootless/.local/share/docker; \
{T}chown -R rootless:rootless /home/rootless/.local/share/docker
VOLUME /home/rootless/.local/share/docker
USER rootless
)DF"));
  test::check_same_as_docker(p, "public-dind-rootless:1");
}
