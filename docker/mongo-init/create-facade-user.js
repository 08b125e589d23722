// Run once by the mongo image's entrypoint (docker-entrypoint-initdb.d), as the root user,
// when the mongo-data volume is first initialised: the façade's own user, with read/write
// on its database only, so the façade never holds the root password.
// The password comes from the compose secret; one trailing newline (from `print`) is dropped.
const fs = require("fs");
const password = fs.readFileSync("/run/secrets/mongo_facade_password", "utf8").replace(/\r?\n$/, "");
if (!password) {
  throw new Error("docker/secrets/mongo_facade_password is empty");
}
db.getSiblingDB("admin").createUser({
  user: "facade",
  pwd: password,
  roles: [{ role: "readWrite", db: "nhs_fhir_facade" }],
});
