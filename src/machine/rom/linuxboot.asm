; linuxboot.asm: the option ROM through which the firmware starts a Linux kernel that tsvisor
; was given with --kernel (the "boot through firmware" path, as QEMU's -kernel works).
;
; The VMM has already patched the kernel's setup header (command line pointer, initrd, heap)
; and published the pieces as fw_cfg items. The firmware runs this ROM's Boot Entry Vector
; when it is first in the boot order; the ROM copies setup code, kernel, initrd and command
; line to the addresses fw_cfg names, using fw_cfg DMA (so destinations above 1 MiB need no
; unreal mode), and enters the kernel's real-mode setup code as the boot protocol says:
; all data segments = the setup segment, SP just below the command line, CS = segment + 0x20.
;
; Assemble: nasm -f bin -o linuxboot.bin linuxboot.asm (the VMM fixes size and checksums).
BITS 16
ORG 0

FW_CFG_SELECTOR  equ 0x510
FW_CFG_DATA      equ 0x511
FW_CFG_DMA_HIGH  equ 0x514
FW_CFG_DMA_LOW   equ 0x518
DMA_SELECT_READ  equ 0x0a           ; control bits: select the item (0x08), then read it (0x02)
DESCRIPTOR       equ 0x500          ; scratch DMA descriptor in free conventional memory
KEY_CMDLINE_ADDR equ 0x13
KEY_SETUP_ADDR   equ 0x16

header:
    dw 0xaa55
    db 0                            ; length in 512-byte blocks, set by the VMM
    retf                            ; initialisation entry: nothing to set up
    times 0x18 - ($ - $$) db 0
    dw 0                            ; no PCI data structure
    dw pnp                          ; expansion header for Plug and Play

pnp:
    db '$PnP'
    db 1                            ; structure revision
    db 2                            ; length in 16-byte units
    dw 0                            ; no next header
    db 0                            ; reserved
    db 0                            ; checksum, set by the VMM
    dd 0                            ; device identifier
    dw manufacturer
    dw product
    db 0, 0, 0                      ; device type code
    db 0                            ; device indicators
    dw 0                            ; boot connection vector
    dw 0                            ; disconnect vector
    dw boot                         ; bootstrap entry vector
    dw 0                            ; reserved
    dw 0                            ; static resource information vector

manufacturer: db 'tsvisor', 0
product:      db 'Linux kernel (fw_cfg)', 0

; fw_cfg items to copy: address key, size key, data key (setup, kernel, initrd, command line).
blobs:
    db 0x16, 0x17, 0x18
    db 0x07, 0x08, 0x11
    db 0x0a, 0x0b, 0x12
    db 0x13, 0x14, 0x15
    db 0xff

boot:
    cli
    cld
    xor ax, ax
    mov ds, ax
    mov si, blobs
.next_blob:
    mov al, [cs:si]
    cmp al, 0xff
    je .enter_kernel
    call read_item32
    mov ebx, eax                    ; destination address
    mov al, [cs:si + 1]
    call read_item32
    mov ecx, eax                    ; length
    test ecx, ecx
    jz .skip
    movzx edx, byte [cs:si + 2]
    shl edx, 16
    or edx, DMA_SELECT_READ
    bswap edx
    mov [DESCRIPTOR], edx           ; control (big-endian)
    bswap ecx
    mov [DESCRIPTOR + 4], ecx       ; length
    xor eax, eax
    mov [DESCRIPTOR + 8], eax       ; address, high half
    bswap ebx
    mov [DESCRIPTOR + 12], ebx      ; address, low half
    mov dx, FW_CFG_DMA_HIGH         ; the descriptor's address: high half, then low half starts it
    out dx, eax
    mov eax, DESCRIPTOR
    bswap eax
    mov dx, FW_CFG_DMA_LOW
    out dx, eax
.skip:
    add si, 3
    jmp .next_blob

.enter_kernel:
    mov al, KEY_CMDLINE_ADDR
    call read_item32
    mov edi, eax
    mov al, KEY_SETUP_ADDR
    call read_item32
    sub edi, eax
    sub edi, 16                     ; stack top: just below the command line
    shr eax, 4                      ; the setup segment
    mov ds, ax
    mov es, ax
    mov fs, ax
    mov gs, ax
    mov ss, ax
    mov esp, edi
    add ax, 0x20
    push ax
    push word 0
    xor eax, eax
    xor ebx, ebx
    xor ecx, ecx
    xor edx, edx
    xor esi, esi
    xor edi, edi
    xor ebp, ebp
    retf

; EAX = the 32-bit little-endian value of fw_cfg item AL.
read_item32:
    push dx
    movzx ax, al
    mov dx, FW_CFG_SELECTOR
    out dx, ax
    mov dx, FW_CFG_DATA
    in al, dx
    ror eax, 8
    in al, dx
    ror eax, 8
    in al, dx
    ror eax, 8
    in al, dx
    ror eax, 8
    pop dx
    ret
