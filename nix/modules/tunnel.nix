# tunnel.nix: services.ringild.tunnel: the WireGuard tunnel the agent reaches the fleet server through (seed: "connects to the server (via a tunnel)").
#
# - The drone's private key is made on the drone at first boot (ringil-tunnel-key.service, `wg genkey`)
#   into privateKeyFile on the encrypted root: never in the Nix store, never on the unencrypted ESP,
#   0400 in a 0700 root-only directory. Its public key is written next to it and logged once, for the
#   operator to add the drone as a peer on the fleet's WireGuard endpoint.
# - The fleet server's URL (services.ringild.serverUrl), and its enrollment port's (enrollServerUrl) when
#   set, must be addresses inside the tunnel (asserted).
# - ringild (and everything it runs: downloads, the Nix cache mirror) requires and follows the interface
#   unit, and with restrictAgent may use only that interface and the server's tunnel addresses
#   (RestrictNetworkInterfaces=, IPAddressAllow=): nothing it sends can leave outside the tunnel.
# The interface itself is NixOS's networking.wireguard (script backend: its keys are read as root).
# ringil audit checks the result on a drone: TUN-001 (server reached only through the tunnel) and
# TUN-002 (key file mode), docs/audit.md.
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkIf types;
  agent = config.services.ringild;
  cfg = agent.tunnel;
  wgUnit = "wireguard-${cfg.interface}.service";

  absPath = types.strMatching "/[^ \n]*";
  # CIDR (IPv4 a.b.c.d/n or IPv6 x:…/n); the host part is checked below where it matters
  cidr = types.strMatching "([0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}|[0-9a-fA-F:]+/[0-9]{1,3})";

  # "https://HOST:PORT/…" → HOST (brackets of an IPv6 literal removed)
  urlHost =
    url:
    let
      m = builtins.match "https://([[]([0-9a-fA-F:]+)[]]|([^]/:[]+))(:[0-9]+)?(/.*)?" url;
    in
    if m == null then null else if builtins.elemAt m 1 != null then builtins.elemAt m 1 else builtins.elemAt m 2;

  ipv4 =
    s:
    let
      m = builtins.match "([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})\\.([0-9]{1,3})" s;
      o = map lib.toInt m;
    in
    if m == null || builtins.any (x: x > 255) o then null else builtins.foldl' (a: x: a * 256 + x) 0 o;
  pow2 = n: builtins.foldl' (a: _: a * 2) 1 (lib.range 1 n);
  # is the literal address `host` inside prefix "net/len"? (IPv6: only as the prefix's own address)
  inPrefix =
    host: prefix:
    let
      parts = lib.splitString "/" prefix;
      net = builtins.head parts;
      len = lib.toInt (lib.last parts);
      h = ipv4 host;
      n = ipv4 net;
    in
    if h != null && n != null then len <= 32 && h / pow2 (32 - len) == n / pow2 (32 - len)
    else lib.toLower host == lib.toLower net;
  inTunnel = url: let h = urlHost url; in h != null && builtins.any (inPrefix h) cfg.server.addresses;
  hostInTunnel = inTunnel agent.serverUrl;
  serverIPs = map (p: builtins.head (lib.splitString "/" p)) cfg.server.addresses;

  keyDir = dirOf cfg.privateKeyFile;
in
{
  options.services.ringild.tunnel = {
    enable = mkOption {
      type = types.bool;
      default = false;
      description = "Reach the fleet server only through a WireGuard tunnel (the seed's drones connect \"via a tunnel\").";
    };
    interface = mkOption {
      type = types.strMatching "[a-z][a-z0-9_-]{0,14}";
      default = "ringil0";
      description = "WireGuard interface name.";
    };
    addresses = mkOption {
      type = types.nonEmptyListOf cidr;
      example = [ "10.77.0.12/32" ];
      description = "This drone's address(es) inside the tunnel (one per drone, e.g. from its enrollment).";
    };
    privateKeyFile = mkOption {
      type = absPath;
      default = "/var/lib/ringil/tunnel/private.key";
      description = ''
        The drone's WireGuard private key, generated on the drone at first boot (never in the Nix store).
        It must be on the encrypted root (not /boot, not /nix/store); its directory is made 0700.
      '';
    };
    server = {
      publicKey = mkOption {
        type = types.strMatching "[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=";
        description = "The fleet WireGuard endpoint's public key (base64, `wg pubkey`).";
      };
      endpoint = mkOption {
        type = types.strMatching "([A-Za-z0-9.-]+|[[][0-9a-fA-F:]+[]]):[0-9]{1,5}";
        example = "fleet.example.org:51820";
        description = "host:port of the fleet's WireGuard endpoint (outside the tunnel).";
      };
      addresses = mkOption {
        type = types.nonEmptyListOf cidr;
        example = [ "10.77.0.1/32" ];
        description = ''
          The fleet server's address(es) inside the tunnel: the peer's AllowedIPs, the only destinations
          routed into the tunnel. services.ringild.serverUrl must name one of them.
        '';
      };
      presharedKeyFile = mkOption {
        type = types.nullOr absPath;
        default = null;
        description = "Optional preshared key file (`wg genpsk`; post-quantum margin), provisioned outside the store.";
      };
    };
    persistentKeepalive = mkOption {
      type = types.nullOr (types.ints.between 1 65535);
      default = 25;
      description = "Seconds between keepalives, so a drone behind NAT stays reachable for its check-ins.";
    };
    mtu = mkOption {
      type = types.nullOr (types.ints.between 1280 9000);
      default = null;
      description = "Interface MTU (default: the kernel's 1420).";
    };
    restrictAgent = mkOption {
      type = types.bool;
      default = true;
      description = ''
        ringild may use only the tunnel interface (and loopback) and only the server's tunnel addresses
        (systemd RestrictNetworkInterfaces= and IPAddressAllow=/IPAddressDeny=).
      '';
    };
  };

  config = mkIf (agent.enable && cfg.enable) {
    assertions = [
      {
        assertion = hostInTunnel;
        message = "services.ringild.tunnel: serverUrl (${agent.serverUrl}) must name an address inside the tunnel (tunnel.server.addresses: ${toString cfg.server.addresses}).";
      }
      {
        # enrollment is the drone's first exchange with the server: through the tunnel too
        assertion = agent.enrollServerUrl == null || inTunnel agent.enrollServerUrl;
        message = "services.ringild.tunnel: enrollServerUrl (${toString agent.enrollServerUrl}) must name an address inside the tunnel (tunnel.server.addresses: ${toString cfg.server.addresses}).";
      }
      {
        assertion = !(lib.hasPrefix "/nix/store/" cfg.privateKeyFile || lib.hasPrefix "/boot/" cfg.privateKeyFile
                      || lib.hasPrefix "${config.boot.loader.efi.efiSysMountPoint}/" cfg.privateKeyFile);
        message = "services.ringild.tunnel.privateKeyFile must be on the encrypted root, not in the Nix store or on the ESP.";
      }
      {
        assertion = !config.networking.wireguard.useNetworkd;
        message = "services.ringild.tunnel uses networking.wireguard's script backend: its root-only key is not readable by systemd-networkd.";
      }
    ];

    networking.wireguard.interfaces.${cfg.interface} = {
      ips = cfg.addresses;
      inherit (cfg) privateKeyFile mtu;
      generatePrivateKeyFile = false; # ringil-tunnel-key.service makes it (root-only directory, 0400)
      peers = [
        {
          inherit (cfg.server) publicKey endpoint presharedKeyFile;
          allowedIPs = cfg.server.addresses;
          inherit (cfg) persistentKeepalive;
          # a DNS name: resolve it again now and then (the endpoint may move)
          dynamicEndpointRefreshSeconds = if builtins.match "[0-9.]+:[0-9]+|[[].*[]]:[0-9]+" cfg.server.endpoint != null then 0 else 300;
        }
      ];
    };

    systemd.services.ringil-tunnel-key = {
      description = "ringil: generate this drone's WireGuard key (first boot)";
      wantedBy = [ wgUnit ];
      requiredBy = [ wgUnit ];
      before = [ wgUnit ];
      after = [ "local-fs.target" ];
      path = [ pkgs.wireguard-tools pkgs.coreutils ];
      script = ''
        set -eu
        umask 077
        key=${lib.escapeShellArg cfg.privateKeyFile}
        dir=${lib.escapeShellArg keyDir}
        install -d -m 0700 -o root -g root "$dir"
        # made once: a key that exists is kept (it is the drone's identity on the fleet's WireGuard endpoint)
        if [ ! -e "$key" ]; then
          tmp=$(mktemp "$dir/.key.XXXXXX")
          wg genkey > "$tmp"
          chmod 0400 "$tmp"
          sync "$tmp"
          mv -T --no-clobber "$tmp" "$key"
          sync "$dir"
        fi
        wg pubkey < "$key" > "$dir/.public.key.tmp"
        chmod 0444 "$dir/.public.key.tmp"
        mv -T "$dir/.public.key.tmp" "$dir/public.key"
        echo "ringil tunnel ${cfg.interface}: this drone's public key is $(cat "$dir/public.key")"
      '';
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        UMask = "0077";
        PrivateNetwork = true;
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ReadWritePaths = [ keyDir ];
        StandardOutput = "journal+console";
      };
    };

    # The agent starts with the tunnel and stops with it.
    systemd.services.ringild = {
      requires = [ wgUnit ];
      after = [ wgUnit ];
      serviceConfig = mkIf cfg.restrictAgent {
        RestrictNetworkInterfaces = [ "lo" cfg.interface ];
        IPAddressDeny = "any";
        IPAddressAllow = [ "localhost" ] ++ serverIPs;
      };
    };
  };
}
