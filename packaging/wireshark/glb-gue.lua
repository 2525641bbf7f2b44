-- Wireshark dissector for GLB's GUE encapsulation (UDP port 19523).
--
-- A GLB director wraps each client packet in UDP + GUE and sends it to a
-- proxy. The GUE header carries GLB private data: which hop is next and the
-- list of alternative proxies for the proxy's "second chance". After the
-- header comes the client's original IPv4 or IPv6 packet, which this
-- dissector hands to Wireshark's own IP dissectors, so display filters such
-- as `ip.src`, `tcp.port` and tshark's `-e ip -e tcp` show both the outer
-- (director -> proxy) and the inner (client -> VIP) packet.
--
-- Install: copy to the global Lua plugin folder
-- (/usr/lib/x86_64-linux-gnu/wireshark/plugins/ on Debian 12) or the personal
-- one (~/.local/lib/wireshark/plugins/), or load it for one run with
-- `tshark -X lua_script:glb-gue.lua ...`.

local glb_gue = Proto("glbgue", "GLB Generic UDP Encapsulation")

local GUE_PORT_DEFAULT = 19523
local GLB_PRIVATE_TYPE = 0

local proto_names = { [4] = "IPv4", [41] = "IPv6" }

local f = glb_gue.fields
f.version   = ProtoField.uint8("glbgue.version", "Version", base.DEC, nil, 0xc0)
f.control   = ProtoField.bool("glbgue.control", "Control message", 8, nil, 0x20)
f.hlen      = ProtoField.uint8("glbgue.hlen", "Extension length (32-bit words)", base.DEC, nil, 0x1f)
f.proto     = ProtoField.uint8("glbgue.proto", "Inner protocol", base.DEC, proto_names)
f.flags     = ProtoField.uint16("glbgue.flags", "Flags", base.HEX)
f.glb       = ProtoField.bytes("glbgue.glb", "GLB private data")
f.priv_type = ProtoField.uint16("glbgue.glb.type", "Private data type", base.DEC)
f.next_hop  = ProtoField.uint8("glbgue.glb.next_hop", "Next hop index", base.DEC)
f.hop_count = ProtoField.uint8("glbgue.glb.hop_count", "Hop count", base.DEC)
f.hop       = ProtoField.ipv4("glbgue.glb.hop", "Hop")
f.payload   = ProtoField.bytes("glbgue.payload", "Payload")

local e_short     = ProtoExpert.new("glbgue.short", "Truncated GUE header",
                                    expert.group.MALFORMED, expert.severity.ERROR)
local e_hlen      = ProtoExpert.new("glbgue.hlen_mismatch",
                                    "hlen does not match hop count + 1 (a proxy drops this packet)",
                                    expert.group.MALFORMED, expert.severity.WARN)
local e_next      = ProtoExpert.new("glbgue.next_hop_range", "Next hop index beyond the hop list",
                                    expert.group.PROTOCOL, expert.severity.NOTE)
local e_proto     = ProtoExpert.new("glbgue.unknown_proto",
                                    "Inner protocol is neither IPv4 (4) nor IPv6 (41)",
                                    expert.group.UNDECODED, expert.severity.WARN)
local e_priv      = ProtoExpert.new("glbgue.not_glb", "Private data is not GLB's (type != 0)",
                                    expert.group.PROTOCOL, expert.severity.NOTE)
glb_gue.experts = { e_short, e_hlen, e_next, e_proto, e_priv }

glb_gue.prefs.udp_port = Pref.uint("UDP port", GUE_PORT_DEFAULT,
                                   "UDP destination port that carries GLB GUE")

local ip_dissector = Dissector.get("ip")
local ipv6_dissector = Dissector.get("ipv6")
local data_dissector = Dissector.get("data")

-- Hand the rest of the packet to the IPv4/IPv6 dissector named by `proto`.
local function dissect_inner(proto, tvb, offset, pinfo, tree, item)
    if offset >= tvb:len() then
        return
    end
    local inner = tvb(offset):tvb()
    if proto == 4 then
        ip_dissector:call(inner, pinfo, tree)
    elseif proto == 41 then
        ipv6_dissector:call(inner, pinfo, tree)
    else
        item:add_proto_expert_info(e_proto)
        data_dissector:call(inner, pinfo, tree)
    end
end

function glb_gue.dissector(tvb, pinfo, tree)
    local len = tvb:len()
    if len < 1 then
        return 0
    end
    local version = bit.rshift(tvb(0, 1):uint(), 6)

    -- GUE version 1: no GUE header, the IP packet follows the UDP header.
    if version == 1 then
        local item = tree:add(glb_gue, tvb(0, 0), "GLB GUE, version 1 (direct IP encapsulation)")
        local ipver = bit.rshift(tvb(0, 1):uint(), 4)
        dissect_inner(ipver == 6 and 41 or 4, tvb, 0, pinfo, tree, item)
        return len
    end

    if len < 4 then
        local item = tree:add(glb_gue, tvb(), "GLB GUE (truncated)")
        item:add_proto_expert_info(e_short)
        return len
    end

    local hlen = bit.band(tvb(0, 1):uint(), 0x1f)
    local control = bit.band(tvb(0, 1):uint(), 0x20) ~= 0
    local proto = tvb(1, 1):uint()
    local header_len = 4 + hlen * 4
    local avail = math.min(header_len, len)

    local item = tree:add(glb_gue, tvb(0, avail))
    item:add(f.version, tvb(0, 1))
    item:add(f.control, tvb(0, 1))
    item:add(f.hlen, tvb(0, 1))
    item:add(f.proto, tvb(1, 1))
    item:add(f.flags, tvb(2, 2))

    if header_len > len then
        item:add_proto_expert_info(e_short)
        return len
    end

    local summary = string.format("GLB GUE, hlen %d, %s", hlen,
                                  proto_names[proto] or ("protocol " .. proto))

    if hlen >= 1 then
        local glb = item:add(f.glb, tvb(4, hlen * 4))
        local priv_type = tvb(4, 2):uint()
        glb:add(f.priv_type, tvb(4, 2))
        if priv_type ~= GLB_PRIVATE_TYPE then
            glb:add_proto_expert_info(e_priv)
        else
            local next_hop = tvb(6, 1):uint()
            local hop_count = tvb(7, 1):uint()
            glb:add(f.next_hop, tvb(6, 1))
            glb:add(f.hop_count, tvb(7, 1))
            glb:set_text(string.format("GLB private data: next hop %d of %d", next_hop, hop_count))
            if hlen ~= hop_count + 1 then
                glb:add_proto_expert_info(e_hlen)
            end
            if next_hop > hop_count then
                glb:add_proto_expert_info(e_next)
            end
            -- Only the hops that fit inside hlen are on the wire.
            local shown = math.min(hop_count, hlen - 1)
            local hops = {}
            for i = 0, shown - 1 do
                local range = tvb(8 + i * 4, 4)
                local hop = glb:add(f.hop, range)
                local mark = (i == next_hop) and " (next)" or ""
                hop:set_text(string.format("Hop %d: %s%s", i, tostring(range:ipv4()), mark))
                hops[#hops + 1] = tostring(range:ipv4())
            end
            if #hops > 0 then
                summary = summary .. ", hops " .. table.concat(hops, " ")
                    .. string.format(" (next %d)", next_hop)
            end
        end
    end
    item:set_text(summary)

    if control then
        item:add(f.payload, tvb(header_len))
        return len
    end
    dissect_inner(proto, tvb, header_len, pinfo, tree, item)
    return len
end

local registered_port = nil

local function register_port()
    local udp = DissectorTable.get("udp.port")
    if registered_port ~= nil then
        udp:remove(registered_port, glb_gue)
    end
    registered_port = glb_gue.prefs.udp_port
    udp:add(registered_port, glb_gue)
end

function glb_gue.prefs_changed()
    if registered_port ~= glb_gue.prefs.udp_port then
        register_port()
    end
end

register_port()
