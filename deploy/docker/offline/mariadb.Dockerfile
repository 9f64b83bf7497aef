# A stand-in for the official `mariadb` image, made from Debian packages for machines with
# no image registry. It honours the part of that image's contract compose.yaml uses:
# MARIADB_ROOT_PASSWORD (root from any host), data in /var/lib/mysql, port 3306,
# mariadb-admin for the health check.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/*
COPY mariadb-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME ["/var/lib/mysql"]
EXPOSE 3306
ENTRYPOINT ["/bin/sh", "/usr/local/bin/docker-entrypoint.sh"]
