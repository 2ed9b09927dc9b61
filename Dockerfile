# syntax=docker/dockerfile:1
# The production image of the SMART on FHIR launch server (README "Production").
# - build stage: every dependency, the type check and the bundle in dist/ (scripts/build.mjs)
# - runtime stage: Node.js 22 LTS (oidc-provider's supported runtime) on Debian slim, production
#   dependencies only, compiled code, views and static files — owned by root, run as `node`
#   (uid 1000), so the process cannot change its own code
# - no keys, no data, no .env: SECRETS_KEY, ADMIN_TOKEN, DATABASE_URL come from the environment
# - HEALTHCHECK asks /readyz with Node's fetch (the slim image has no curl)
# - NODE_OPTIONS sets the heap budget npm start also uses (README "Memory"): without it V8 sizes
#   the heap from the host's memory and lets garbage pile up to ≈ 4 times what is live; keep it
#   when adding options of your own
# - node is PID 1 and handles SIGTERM itself: stops accepting, drains in-flight requests
#   (10 s at most), closes the database (src/main.ts)
# Lint without a Docker daemon: npm run lint (scripts/lint-deploy.mjs).

ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.mjs ./scripts/build.mjs
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    NODE_OPTIONS=--max-old-space-size=1024 \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/var/lib/smart-ocean-launch/data \
    KEYS_DIR=/var/lib/smart-ocean-launch/keys
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY views ./views
COPY public ./public
# The embedded database's folder, for a single container without DATABASE_URL; empty here.
RUN mkdir -p /var/lib/smart-ocean-launch && chown node:node /var/lib/smart-ocean-launch
USER node
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz',{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]
