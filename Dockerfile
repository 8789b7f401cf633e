# syntax=docker/dockerfile:1
# One image for every kmq role; its entrypoint is the `kmq` command:
#   docker build -t kmq .                        # operator, broker and sidecar alike
#   docker build --target broker -t kmq-broker . # the same, with `kmq broker` as the default command
# The chart and the operator pass the subcommand (`operator`, `broker`, `sidecar`) themselves.
ARG NODE_VERSION=20.19

# Compile TypeScript with every dependency.
FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build

# Production dependencies only.
FROM node:${NODE_VERSION}-bookworm AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

# dist/, production node_modules and package.json (for "type": "module"), nothing else.
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
RUN chmod 0755 dist/cli/main.js \
 && ln -s /app/dist/cli/main.js /usr/local/bin/kmq \
 && mkdir -p /var/lib/kmq \
 && chown 65532:65532 /var/lib/kmq
# The "nonroot" uid; Kubernetes pods set their own (runAsNonRoot needs a numeric one).
USER 65532:65532
ENTRYPOINT ["kmq"]
CMD ["--help"]

FROM runtime AS broker
EXPOSE 9092 9093
CMD ["broker", "--data", "/var/lib/kmq", "--host", "0.0.0.0"]

FROM runtime AS sidecar
CMD ["sidecar"]

FROM runtime AS operator
EXPOSE 8081 9443
CMD ["operator"]

# The default target.
FROM runtime AS kmq
