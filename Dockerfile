# syntax=docker/dockerfile:1
#
# One image for every role: `herald` is the entrypoint, the command picks the role
# (migrate, scheduler, worker, webhooks, report, demo). See docker-compose.yml.
#
# No Docker engine runs on our development and CI machines, so this file is not built there:
# keep it in step with scripts/install-deps (the same Debian packages) and the README's install
# steps by hand. The build stage installs what install-deps installs, minus the PostgreSQL server
# (only the tests and `herald demo` without DATABASE_URL need it); the runtime stage has only the
# shared libraries Herald links, libpq, libcurl and mimalloc (its allocator), and tzdata. Time zones (contacts.time_zone,
# send windows) are resolved by PostgreSQL, so the database server's host needs tzdata too (the
# official postgres images have it).

# The Swift toolchain we develop and test with (6.3), on Debian 12 like the runtime stage.
ARG SWIFT_IMAGE=swift:6.3-bookworm

FROM ${SWIFT_IMAGE} AS build
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends libpq-dev libcurl4-openssl-dev libmimalloc-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --static-swift-stdlib links the Swift runtime and Foundation into the binary, so the runtime
# image needs no Swift libraries.
RUN --mount=type=cache,target=/src/.build \
    swift build -c release --product herald --static-swift-stdlib \
    && cp "$(swift build -c release --show-bin-path)/herald" /usr/local/bin/herald

FROM debian:bookworm-slim
RUN export DEBIAN_FRONTEND=noninteractive \
    && apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends libpq5 libcurl4 libmimalloc2.0 ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin herald
COPY --from=build /usr/local/bin/herald /usr/local/bin/herald
USER herald
# `herald webhooks` (receipts, /metrics, /healthz).
EXPOSE 8080
# Every long-running role stops cleanly on SIGTERM (docker stop): give it a grace period with
# `stop_grace_period` / `--stop-timeout` longer than the worker's --shutdown-grace (10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["herald"]
CMD ["--help"]
