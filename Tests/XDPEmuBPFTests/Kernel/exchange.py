# Sends frames out of an interface and prints what comes back, one hex line per frame sent (an empty line when
# nothing came back within the timeout). Run inside the test's network namespace:
#   python3 exchange.py IFNAME < frames.hex > replies.hex      (one frame in hex a line)
import socket, sys, select

ifname = sys.argv[1]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((ifname, 0))
for line in sys.stdin:
    frame = bytes.fromhex(line.strip())
    s.send(frame)
    reply = b""
    while True:
        ready, _, _ = select.select([s], [], [], 1.0)
        if not ready:
            break
        data, address = s.recvfrom(65535)
        if address[2] == socket.PACKET_OUTGOING:
            continue
        reply = data
        break
    print(reply.hex(), flush=True)
