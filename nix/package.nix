# package.nix: the ringil derivation (ringil, ringild, ringil-server) built with Meson from this repository.
{ lib
, stdenv
, meson
, ninja
, pkg-config
, openssl
, jansson
, curl
, sqlite
, cmocka
, src ? ../.
}:

let
  # Unit tests and the fuzz corpora replay; the integration tests need sbsigntools, efitools and
  # root (loop devices), so they run in `make check`, not in the build sandbox.
  runTests = stdenv.buildPlatform.canExecute stdenv.hostPlatform;
in
stdenv.mkDerivation {
  pname = "ringil";
  version = "0.1.0";

  # The repository minus build trees and VCS metadata; the flake passes its own source.
  src = lib.cleanSourceWith {
    inherit src;
    filter = path: type:
      let base = baseNameOf path; in
      !(type == "directory" && (base == ".git" || base == "build" || lib.hasPrefix "build-" base))
      && !(lib.hasSuffix ".pyc" base);
  };

  strictDeps = true;
  nativeBuildInputs = [ meson ninja pkg-config ];
  buildInputs = [ openssl jansson curl sqlite ];
  checkInputs = [ cmocka ];

  mesonBuildType = "release";
  mesonFlags = [
    (lib.mesonBool "hardening" true)
    (lib.mesonEnable "tests" runTests)
    (lib.mesonBool "fuzzing" false)
  ];

  doCheck = runTests;

  meta = {
    description = "Secure Boot keys, signed update bundles, A/B install, audit and fleet agent for NixOS drones";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = "ringil";
  };
}
