# fhir3t image: slim Python, a non-root user (uid/gid 10001), the reviewed profiles installed with the wheel
# (under /usr/local/share/fhir3t/profiles, where fhir3t finds them), the samples for the smoke test. One image
# runs the CDS Hooks service, the watcher and the nightly screen (deploy/docker-entrypoint.sh):
#
#   docker build -t fhir3t .
#   docker run --rm fhir3t smoke                                   (screens the bundled samples: exit 0)
#   docker run -d -p 8088:8088 -v /etc/fhir3t:/etc/fhir3t:ro -v fhir3t-state:/var/lib/fhir3t fhir3t serve
#   docker run -d -v /etc/fhir3t:/etc/fhir3t:ro -v fhir3t-state:/var/lib/fhir3t fhir3t watch --interval 300
#   docker run --rm -v /etc/fhir3t:/etc/fhir3t:ro -v /srv/fhir3t:/var/lib/fhir3t fhir3t nightly   (from cron)
#
# deploy/docker-compose.example.yml has all three. The config file is read from /etc/fhir3t/config.toml (mount it
# read-only); secrets are files under /run/secrets (a SMART key, a token file), owned by uid 10001 with mode 0400
# or group 10001 with mode 0440: the entrypoint checks them at start and names any it cannot read.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY src ./src
COPY profiles ./profiles
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    FHIR3T_OUT=/var/lib/fhir3t XDG_STATE_HOME=/var/lib/fhir3t/state
RUN groupadd --system --gid 10001 fhir3t \
 && useradd --system --uid 10001 --gid fhir3t --home-dir /home/fhir3t --create-home fhir3t \
 && install -d -o fhir3t -g fhir3t /var/lib/fhir3t /var/lib/fhir3t/state
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY samples /opt/fhir3t/samples
COPY deploy/fhir3t-nightly.sh /usr/local/bin/fhir3t-nightly.sh
COPY deploy/docker-entrypoint.sh /usr/local/bin/fhir3t-entrypoint
USER fhir3t
WORKDIR /var/lib/fhir3t
EXPOSE 8088
ENTRYPOINT ["/usr/local/bin/fhir3t-entrypoint"]
CMD ["--help"]
