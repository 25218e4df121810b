# fhir3t CLI image: slim Python, a non-root user, the reviewed profiles installed with the wheel
# (under /usr/local/share/fhir3t/profiles, where fhir3t finds them), the samples for a smoke test.
#
#   docker build -t fhir3t .
#   docker run --rm fhir3t screen /opt/fhir3t/samples/screening
#   docker run --rm -v /etc/fhir3t:/etc/fhir3t:ro -v /srv/fhir3t:/var/lib/fhir3t \
#     fhir3t screen --html /var/lib/fhir3t/worklist.html --csv /var/lib/fhir3t/worklist.csv
#
# The config file is found at /etc/fhir3t/config.toml (mount it read-only, with the key files it names);
# secrets come from the environment (docker run -e FHIR3T_TOKEN or --env-file), never from the image.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY profiles ./profiles
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 fhir3t \
 && useradd --system --uid 10001 --gid fhir3t --home-dir /home/fhir3t --create-home fhir3t \
 && install -d -o fhir3t -g fhir3t /var/lib/fhir3t
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY samples /opt/fhir3t/samples
COPY deploy/fhir3t-nightly.sh /usr/local/bin/fhir3t-nightly.sh
USER fhir3t
WORKDIR /var/lib/fhir3t
ENTRYPOINT ["fhir3t"]
CMD ["--help"]
