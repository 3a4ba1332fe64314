/*
 * nsbox - sync_socket.c: messages on the sync socket between nsbox and C (the
 * container's first process), an fd passed along when there is one. Part of the
 * helper (nsbox's side, W and C before the shim ran them) and of the shim
 * (nsbox-spawn runs W and C, csrc/shim.c); built after lib.c.
 */

/* A message header for one buffer and room for one passed fd (SCM_RIGHTS). */
union fd_cmsg {
    struct cmsghdr h;
    u8 buf[sizeof(struct cmsghdr) + 8];
};
static void msg_init(struct msghdr *mh, struct iovec *iov, void *buf, int len, union fd_cmsg *cm) {
    iov->base = buf;
    iov->len = (size_t)len;
    memset(mh, 0, sizeof *mh);
    memset(cm, 0, sizeof *cm);
    mh->iov = iov;
    mh->iovlen = 1;
    mh->control = cm;
    mh->controllen = sizeof cm->buf;
}

/* One message from the sync socket, with an fd if one came (else *fd = -1).
 * Returns the byte count, 0 at end-of-file, or -errno. */
static int nsb_recv(int sock, u8 *buf, int len, i32 *fd) {
    struct msghdr mh;
    struct iovec iov;
    union fd_cmsg cm;
    long r;
    msg_init(&mh, &iov, buf, len, &cm);
    *fd = -1;
    /* A peer that exits with our GO unread resets the connection: that error
     * comes once, before what the peer sent (its ERROR report), which follows. */
    do r = SC3(SYS_recvmsg, sock, &mh, MSG_CMSG_CLOEXEC);
    while (r == -EINTR || r == -104 /* ECONNRESET */);
    if (r > 0 && mh.controllen >= sizeof(struct cmsghdr) + 4 && cm.h.level == SOL_SOCKET && cm.h.type == SCM_RIGHTS)
        memcpy(fd, cm.buf + sizeof(struct cmsghdr), 4);
    return (int)r;
}

/* One message, with fd passed along (SCM_RIGHTS) when fd >= 0. */
static int nsb_send(int sock, const u8 *buf, int len, int fd) {
    struct msghdr mh;
    struct iovec iov;
    union fd_cmsg cm;
    msg_init(&mh, &iov, (void *)buf, len, &cm);
    if (fd >= 0) {
        cm.h.len = sizeof(struct cmsghdr) + 4;
        cm.h.level = SOL_SOCKET;
        cm.h.type = SCM_RIGHTS;
        memcpy(cm.buf + sizeof(struct cmsghdr), &fd, 4);
    } else {
        mh.control = NULL;
        mh.controllen = 0;
    }
    return (int)SC3(SYS_sendmsg, sock, &mh, MSG_NOSIGNAL);
}
