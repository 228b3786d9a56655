// More public Dockerfiles compared with docker build (see public_dockerfiles_test.cpp for the
// approach): COPY wildcards that match nothing beside ones that do, COPY --from --chown into a
// WORKDIR, VOLUME and EXPOSE of variables, legacy ENV values spanning continuation lines,
// ARG-then-ENV of the same value, brace groups and `.` of a file in RUN.
#include <doctest/doctest.h>

#include <filesystem>

#include "tests/support/build_project.h"
#include "tests/support/docker_compare.h"
#include "tests/support/docker_peer.h"
#include "tests/support/root.h"

namespace fs = std::filesystem;
using namespace cbuild;

// Modelled on vercel/next.js examples/with-docker/Dockerfile.
TEST_CASE("public Dockerfile: next.js with-docker (lockfile wildcards matching nothing, COPY --from --chown into ./)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file(".dockerignore", "node_modules\n.next\nDockerfile\n");
  p.file("package.json", "{\"name\": \"with-docker\", \"scripts\": {\"build\": \"next build\"}}\n");
  p.file("yarn.lock", "# yarn lockfile v1\n");
  p.file("public/favicon.ico", "ico\n");
  p.file("pages/index.js", "export default function Home() { return null }\n");
  p.file("node_modules/stale/index.js", "never copied\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE} AS base

# Install dependencies only when needed
FROM base AS deps
WORKDIR /app

# Install dependencies based on the preferred package manager
COPY package.json yarn.lock* package-lock.json* pnpm-lock.yaml* ./
RUN \
  if [ -f yarn.lock ]; then mkdir -p node_modules/next && echo yarn > node_modules/next/installed-by; \
  elif [ -f package-lock.json ]; then mkdir -p node_modules/next && echo npm > node_modules/next/installed-by; \
  elif [ -f pnpm-lock.yaml ]; then mkdir -p node_modules/next && echo pnpm > node_modules/next/installed-by; \
  else echo "Lockfile not found." && exit 1; \
  fi


# Rebuild the source code only when needed
FROM base AS builder
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY . .

# Next.js collects completely anonymous telemetry data about general usage.
# ENV NEXT_TELEMETRY_DISABLED 1

RUN mkdir -p .next/standalone .next/static/chunks && \
    echo 'require("next")' > .next/standalone/server.js && \
    cp package.json .next/standalone/ && \
    echo 'chunk' > .next/static/chunks/main.js

# Production image, copy all the files and run next
FROM base AS runner
WORKDIR /app

ENV NODE_ENV production

RUN echo 'nodejs:x:1001:' >> /etc/group
RUN echo 'nextjs:x:1001:65533::/home/nextjs:/sbin/nologin' >> /etc/passwd

COPY --from=builder /app/public ./public

# Set the correct permission for prerender cache
RUN mkdir .next
RUN chown nextjs:nodejs .next

# Automatically leverage output traces to reduce image size
COPY --from=builder --chown=nextjs:nodejs /app/.next/standalone ./
COPY --from=builder --chown=nextjs:nodejs /app/.next/static ./.next/static

USER nextjs

EXPOSE 3000

ENV PORT 3000
# set hostname to localhost
ENV HOSTNAME "0.0.0.0"

CMD ["node", "server.js"]
)DF"));
  test::check_same_as_docker(p, "public-nextjs:1");
}

// Modelled on jenkinsci/docker Dockerfile (the original java:8-jdk based one).
TEST_CASE("public Dockerfile: jenkins (VOLUME $VAR, EXPOSE $VAR, USER $VAR, COPY after USER stays root-owned)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.file("init.groovy", "import jenkins.model.*\n");
  p.executable("jenkins.sh", "#!/bin/sh\nexec java -jar /usr/share/jenkins/jenkins.war \"$@\"\n");
  p.executable("plugins.sh", "#!/bin/sh\necho plugins\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(FROM {BASE}

# `/usr/share/jenkins/ref/` contains all reference configuration we want
# to set on a fresh new installation. Use it to bundle additional plugins
# or config file with your custom jenkins Docker image.
RUN mkdir -p /usr/share/jenkins/ref/init.groovy.d

ENV TINI_SHA 066ad710107dc7ee05d3aa6e4974f01dc98f3888

# Use tini as subreaper in Docker container to adopt zombie processes
RUN printf '#!/bin/sh\nshift\nexec "$@"\n' > /bin/tini && chmod +x /bin/tini \
  && echo "$(sha1sum /bin/tini | cut -d' ' -f1)  /bin/tini" | sha1sum -c -

ENV JENKINS_VERSION 1.609.3
ENV JENKINS_SHA f5ad5f749c759da7e1a18b96be5db974f126b71e

# could use ADD but this one does not check Last-Modified header
RUN echo "jenkins $JENKINS_VERSION" > /usr/share/jenkins/jenkins.war \
  && echo "$(sha1sum /usr/share/jenkins/jenkins.war | cut -d' ' -f1)  /usr/share/jenkins/jenkins.war" | sha1sum -c -

ENV JENKINS_UC https://updates.jenkins-ci.org
ENV JENKINS_HOME /var/jenkins_home
ENV JENKINS_SLAVE_AGENT_PORT 50000
ENV JENKINS_USER jenkins
ENV JENKINS_UID 1000

# Jenkins is ran with user `jenkins`, uid = 1000
RUN sed -i '/^app:/d' /etc/passwd && echo "$JENKINS_USER:x:$JENKINS_UID:$JENKINS_UID::$JENKINS_HOME:/bin/sh" >> /etc/passwd \
  && mkdir -p "$JENKINS_HOME" && chown $JENKINS_UID:$JENKINS_UID "$JENKINS_HOME"

# Jenkins home directoy is a volume, so configuration and build history
# can be persisted and survive image upgrades
VOLUME $JENKINS_HOME

COPY init.groovy /usr/share/jenkins/ref/init.groovy.d/tcp-slave-agent-port.groovy

RUN chown -R $JENKINS_USER "$JENKINS_HOME" /usr/share/jenkins/ref

# for main web interface:
EXPOSE 8080

# will be used by attached slave agents:
EXPOSE $JENKINS_SLAVE_AGENT_PORT

ENV COPY_REFERENCE_FILE_LOG $JENKINS_HOME/copy_reference_file.log

USER $JENKINS_USER

COPY jenkins.sh /usr/local/bin/jenkins.sh
ENTRYPOINT ["/bin/tini", "--", "/usr/local/bin/jenkins.sh"]

# from a derived Dockerfile, can use `RUN plugin.sh active.txt` to setup /usr/share/jenkins/ref/plugins from a support bundle
COPY plugins.sh /usr/local/bin/plugins.sh
)DF"));
  test::check_same_as_docker(p, "public-jenkins:1");
}

// Modelled on docker-library/php 8.2/bookworm/apache/Dockerfile.
TEST_CASE("public Dockerfile: php apache (legacy ENV over continuations, { } > file, sourced envvars, COPY wildcard)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.executable("docker-php-source", "#!/bin/sh\necho source \"$@\"\n");
  p.executable("docker-php-ext-enable", "#!/bin/sh\nmkdir -p \"$PHP_INI_DIR/conf.d\" && echo \"extension=$1\" > \"$PHP_INI_DIR/conf.d/docker-php-ext-$1.ini\"\n");
  p.executable("docker-php-ext-install", "#!/bin/sh\necho install \"$@\"\n");
  p.executable("docker-php-entrypoint", "#!/bin/sh\nset -e\nexec \"$@\"\n");
  p.executable("apache2-foreground", "#!/bin/sh\nexec apache2 -DFOREGROUND \"$@\"\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(#
# NOTE: THIS DOCKERFILE IS GENERATED VIA "apply-templates.sh"
#
# PLEASE DO NOT EDIT IT DIRECTLY.
#

FROM {BASE}

# prevent Debian's PHP packages from being installed
# https://github.com/docker-library/php/pull/542
RUN set -eux; \
{T}mkdir -p /etc/apt/preferences.d; \
{T}{ \
{T}{T}echo 'Package: php*'; \
{T}{T}echo 'Pin: release *'; \
{T}{T}echo 'Pin-Priority: -1'; \
{T}} > /etc/apt/preferences.d/no-debian-php

# dependencies required for running "phpize"
# (see persistent deps below)
ENV PHPIZE_DEPS \
{T}{T}autoconf \
{T}{T}dpkg-dev \
{T}{T}file \
{T}{T}g++ \
{T}{T}gcc \
{T}{T}libc-dev \
{T}{T}make \
{T}{T}pkg-config \
{T}{T}re2c

RUN echo 'www-data:x:33:' >> /etc/group && echo 'www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin' >> /etc/passwd

ENV PHP_INI_DIR /usr/local/etc/php
RUN set -eux; \
{T}mkdir -p "$PHP_INI_DIR/conf.d"; \
# allow running as an arbitrary user (https://github.com/docker-library/php/issues/743)
{T}[ ! -d /var/www/html ]; \
{T}mkdir -p /var/www/html; \
{T}chown www-data:www-data /var/www/html; \
{T}chmod 1777 /var/www/html

ENV APACHE_CONFDIR /etc/apache2
ENV APACHE_ENVVARS $APACHE_CONFDIR/envvars

RUN set -eux; \
{T}mkdir -p "$APACHE_CONFDIR/conf-available"; \
{T}printf 'export APACHE_RUN_USER=www-data\nexport APACHE_RUN_GROUP=www-data\nexport APACHE_RUN_DIR=/var/run/apache2\nexport APACHE_LOCK_DIR=/var/lock/apache2\nexport APACHE_LOG_DIR=/var/log/apache2\n' > "$APACHE_ENVVARS"; \
{T}\
# generically convert lines like
#   export APACHE_RUN_USER=www-data
# into
#   : ${APACHE_RUN_USER:=www-data}
#   export APACHE_RUN_USER
# so that they can be overridden at runtime ("-e APACHE_RUN_USER=...")
{T}sed -ri 's/^export ([^=]+)=(.*)$/: ${\1:=\2}\nexport \1/' "$APACHE_ENVVARS"; \
{T}\
# setup directories and permissions
{T}. "$APACHE_ENVVARS"; \
{T}for dir in \
{T}{T}"$APACHE_LOCK_DIR" \
{T}{T}"$APACHE_RUN_DIR" \
{T}{T}"$APACHE_LOG_DIR" \
# https://salsa.debian.org/apache-team/apache2/-/commit/b97ca8714890ead1ba6c095699dde752e8433205
{T}{T}"$APACHE_RUN_DIR/socks" \
{T}; do \
{T}{T}rm -rvf "$dir"; \
{T}{T}mkdir -p "$dir"; \
{T}{T}chown "$APACHE_RUN_USER:$APACHE_RUN_GROUP" "$dir"; \
# allow running as an arbitrary user (https://github.com/docker-library/php/issues/743)
{T}{T}chmod 1777 "$dir"; \
{T}done; \
{T}\
# logs should go to stdout / stderr
{T}ln -sfT /dev/stderr "$APACHE_LOG_DIR/error.log"; \
{T}ln -sfT /dev/stdout "$APACHE_LOG_DIR/access.log"; \
{T}ln -sfT /dev/stdout "$APACHE_LOG_DIR/other_vhosts_access.log"; \
{T}chown -R -h "$APACHE_RUN_USER:$APACHE_RUN_GROUP" "$APACHE_LOG_DIR"

# PHP files should be handled by PHP, and should be preferred over any other file type
RUN { \
{T}{T}echo '<FilesMatch \.php$>'; \
{T}{T}echo '\tSetHandler application/x-httpd-php'; \
{T}{T}echo '</FilesMatch>'; \
{T}{T}echo; \
{T}{T}echo 'DirectoryIndex disabled'; \
{T}{T}echo 'DirectoryIndex index.php index.html'; \
{T}} | tee "$APACHE_CONFDIR/conf-available/docker-php.conf"

ENV PHP_CFLAGS="-fstack-protector-strong -fpic -fpie -O2 -D_LARGEFILE_SOURCE -D_FILE_OFFSET_BITS=64"
ENV PHP_CPPFLAGS="$PHP_CFLAGS"
ENV PHP_LDFLAGS="-Wl,-O1 -pie"

ENV GPG_KEYS 39B641343D8C104B2B146DC3F9C39DC0B9698544 E60913E4DF209907D8E30D96659A97C9CF2A795A 1198C0117593497A5EC5C199286AF1F9897469DC

ENV PHP_VERSION 8.2.33
ENV PHP_URL="https://www.php.net/distributions/php-8.2.33.tar.xz" PHP_ASC_URL="https://www.php.net/distributions/php-8.2.33.tar.xz.asc"

COPY docker-php-source /usr/local/bin/

RUN set -eux; \
{T}export \
{T}{T}CFLAGS="$PHP_CFLAGS" \
{T}{T}CPPFLAGS="$PHP_CPPFLAGS" \
{T}{T}LDFLAGS="$PHP_LDFLAGS" \
{T}{T}PHP_UNAME='Linux - Docker' \
{T}; \
{T}docker-php-source extract; \
{T}test "$PHP_INI_DIR" != "${PHP_INI_DIR%/php}"; \
{T}printf '%s\n' "--sysconfdir=${PHP_INI_DIR%/php}" "$CFLAGS" $PHPIZE_DEPS > "$PHP_INI_DIR/configure-flags"; \
{T}printf '#!/bin/sh\necho "PHP %s (cli)"\n' "$PHP_VERSION" > /usr/local/bin/php; \
{T}chmod 755 /usr/local/bin/php; \
# smoke test
{T}php --version

COPY docker-php-ext-* docker-php-entrypoint /usr/local/bin/

# enable OPcache by default (https://wiki.php.net/rfc/make_opcache_required)
RUN docker-php-ext-enable opcache

ENTRYPOINT ["docker-php-entrypoint"]
# https://httpd.apache.org/docs/2.4/stopping.html#gracefulstop
STOPSIGNAL SIGWINCH

COPY apache2-foreground /usr/local/bin/
WORKDIR /var/www/html

EXPOSE 80
CMD ["apache2-foreground"]
)DF"));
  test::check_same_as_docker(p, "public-php:1");
}

// Modelled on docker-library/mongo 4.4/Dockerfile.
TEST_CASE("public Dockerfile: mongo (ARG defaults copied into ENV pairs, ${X%-unstable} in RUN, VOLUME of two paths)") {
  REQUIRE_ROOT();
  test::BuildProject p(test::base_for_test());
  p.executable("docker-entrypoint.sh", "#!/bin/sh\nset -Eeuo pipefail\nexec \"$@\"\n");
  p.file("Dockerfile", test::dockerfile_text(p, R"DF(#
# NOTE: THIS DOCKERFILE IS GENERATED VIA "apply-templates.sh"
#
# PLEASE DO NOT EDIT IT DIRECTLY.
#

FROM {BASE}

# add our user and group first to make sure their IDs get assigned consistently, regardless of whatever dependencies get added
RUN set -eux; \
{T}echo 'mongodb:x:999:' >> /etc/group; \
{T}echo 'mongodb:x:999:999::/data/db:/bin/sh' >> /etc/passwd; \
{T}mkdir -p /data/db /data/configdb; \
{T}chown -R mongodb:mongodb /data/db /data/configdb

# grab gosu for easy step-down from root (https://github.com/tianon/gosu/releases)
ENV GOSU_VERSION 1.12
# grab "js-yaml" for parsing mongod's YAML config files (https://github.com/nodeca/js-yaml/releases)
ENV JSYAML_VERSION 3.13.1

RUN set -ex; \
{T}\
{T}if ! command -v ps > /dev/null; then \
{T}{T}echo 'no ps'; \
{T}fi; \
{T}mkdir -p /usr/local/bin; \
{T}echo "https://github.com/nodeca/js-yaml/raw/${JSYAML_VERSION}/dist/js-yaml.js" > /js-yaml.js; \
# TODO some sort of download verification here
{T}\
# smoke test
{T}printf '#!/bin/sh\nshift\nexec "$@"\n' > /usr/local/bin/gosu; \
{T}chmod +x /usr/local/bin/gosu; \
{T}gosu nobody true

RUN mkdir /docker-entrypoint-initdb.d

# Allow build-time overrides (eg. to build image with MongoDB Enterprise version)
# Options for MONGO_PACKAGE: mongodb-org OR mongodb-enterprise
# Example: docker build --build-arg MONGO_PACKAGE=mongodb-enterprise --build-arg MONGO_REPO=repo.mongodb.com .
ARG MONGO_PACKAGE=mongodb-org
ARG MONGO_REPO=repo.mongodb.org
ENV MONGO_PACKAGE=${MONGO_PACKAGE} MONGO_REPO=${MONGO_REPO}

ENV MONGO_MAJOR 4.4
RUN mkdir -p /etc/apt/sources.list.d && echo "deb [ signed-by=/etc/apt/keyrings/mongodb.gpg ] http://$MONGO_REPO/apt/ubuntu focal/${MONGO_PACKAGE%-unstable}/$MONGO_MAJOR multiverse" | tee "/etc/apt/sources.list.d/${MONGO_PACKAGE%-unstable}.list"

# https://docs.mongodb.org/master/release-notes/4.4/
ENV MONGO_VERSION 4.4.14

RUN set -x \
# installing "mongodb-enterprise" pulls in "tzdata" which prompts for input
{T}&& export DEBIAN_FRONTEND=noninteractive \
{T}&& ln -s /bin/true /usr/local/bin/systemctl \
{T}&& for pkg in \
{T}{T}${MONGO_PACKAGE}=$MONGO_VERSION \
{T}{T}${MONGO_PACKAGE}-server=$MONGO_VERSION \
{T}{T}${MONGO_PACKAGE}-shell=$MONGO_VERSION \
{T}; do echo "$pkg" >> /etc/mongo-packages; done \
{T}&& rm -f /usr/local/bin/systemctl \
{T}&& echo 'storage: {dbPath: /var/lib/mongodb}' > /etc/mongod.conf \
{T}&& mv /etc/mongod.conf /etc/mongod.conf.orig

VOLUME /data/db /data/configdb

# ensure that if running as custom user that "mongosh" has a valid "HOME"
# https://github.com/docker-library/mongo/issues/524
ENV HOME /data/db

COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]

EXPOSE 27017
CMD ["mongod"]
)DF"));
  SUBCASE("defaults") { test::check_same_as_docker(p, "public-mongo:1"); }
  SUBCASE("enterprise build args") {
    test::check_same_as_docker(p, "public-mongo:2",
                               {"--build-arg", "MONGO_PACKAGE=mongodb-enterprise", "--build-arg", "MONGO_REPO=repo.mongodb.com"});
  }
}
