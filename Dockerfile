# Switchyard: the TypeScript sources built to JavaScript (dist/) in a build stage, run without type
# stripping (~30 MiB less resident memory per process; bench/README.md, "memory").
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
# npm ci runs the build (prepare) into dist/.
RUN npm ci && test -x dist/cli/main.js

FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
# jemalloc: `switchyard start` re-executes itself on it when installed (SWITCHYARD_ALLOCATOR=auto).
# With glibc's malloc, RSS stayed 80-115 % above idle 60 s after a load; with jemalloc, 6-9 %
# (bench/README.md, "memory"), at no measurable CPU cost.
RUN apt-get update && apt-get install -y --no-install-recommends libjemalloc2 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
# Runtime files (overrides, guard state, the shadow store) live here: the config directory is often
# a read-only mount.
RUN mkdir -p /var/lib/switchyard && chown node:node /var/lib/switchyard
ENV SWITCHYARD_STATE_DIR=/var/lib/switchyard
# The overrides file keeps the name earlier images gave it.
ENV SWITCHYARD_STATE_FILE=/var/lib/switchyard/state.json
VOLUME /var/lib/switchyard
USER node
EXPOSE 8080 9901
# The admin API's /healthz (no token needed), at the address the config gives (SWITCHYARD_CONFIG);
# SWITCHYARD_ADMIN_URL overrides it.
ENV SWITCHYARD_CONFIG=/etc/switchyard/switchyard.yaml
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "dist/cli/main.js", "healthcheck"]
# The young generation capped at 2 x 8 MiB: under load Node grows it to 64 MiB and never gives it
# back (bench/README.md, "memory"); with the cap RSS stays near its idle level at no measured CPU cost.
ENTRYPOINT ["node", "--max-semi-space-size=8", "dist/cli/main.js"]
CMD ["start", "-c", "/etc/switchyard/switchyard.yaml"]
