# Sourced by ./build, ./jdiffusion and .ci/run: points JAVA_HOME at a JDK 25 or newer.
# Order: $JAVA_HOME if it is new enough, then JDKs in the usual install places, newest first.
jdk_major() {  # prints the feature version of the JDK at $1, or nothing
  local rel="$1/release"
  [ -x "$1/bin/java" ] && [ -x "$1/bin/javac" ] || return 0
  if [ -f "$rel" ]; then
    sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$rel"
  fi
}

find_jdk() {
  local min=25 cand v
  if [ -n "${JAVA_HOME:-}" ]; then
    v=$(jdk_major "$JAVA_HOME")
    if [ -n "$v" ] && [ "$v" -ge "$min" ]; then return 0; fi
  fi
  for cand in $(ls -d /usr/lib/jvm/*/ /usr/local/lib/jvm/*/ /opt/java/*/ /opt/jdk*/ "$HOME"/.sdkman/candidates/java/*/ 2>/dev/null | sort -rV); do
    cand=${cand%/}
    v=$(jdk_major "$cand")
    if [ -n "$v" ] && [ "$v" -ge "$min" ]; then
      export JAVA_HOME="$cand"
      return 0
    fi
  done
  echo "error: jdiffusion needs a JDK $min or newer; none found in JAVA_HOME or /usr/lib/jvm." >&2
  echo "       Install one (e.g. Temurin 25) or set JAVA_HOME to it." >&2
  return 1
}
