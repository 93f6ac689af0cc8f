# Switchyard: runs the TypeScript sources directly on Node 24's type stripping (no build step).
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY src ./src
COPY config ./config
USER node
EXPOSE 8080
ENTRYPOINT ["node", "src/cli/main.ts"]
CMD ["start", "-c", "/etc/switchyard/switchyard.yaml"]
