SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;
SET default_tablespace = '';
SET default_table_access_method = heap;
CREATE TABLE public.ekg_keys (
    key_id bytea NOT NULL,
    handle bytea,
    sender text NOT NULL,
    policy bigint NOT NULL,
    issued_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    destroyed_at bigint,
    destroy_reason bigint,
    version bigint DEFAULT 0 NOT NULL,
    deadline bigint
);
CREATE TABLE public.ekg_recipients (
    key_id bytea NOT NULL,
    "position" bigint NOT NULL,
    address text NOT NULL,
    cert bytea,
    released_at bigint,
    deliveries bigint DEFAULT 0 NOT NULL
);
CREATE TABLE public.ekg_requests (
    sender text NOT NULL,
    nonce bytea NOT NULL,
    request_time bigint NOT NULL,
    key_id bytea NOT NULL
);
CREATE TABLE public.ekg_schema (
    version bigint NOT NULL
);
INSERT INTO public.ekg_keys VALUES ('\x992878c1b61699c987ffca138a3830ca', NULL, 'alice@example.com', 0, 1796623833, 1797228633, 1796623834, 0, 3, 1797228634);
INSERT INTO public.ekg_keys VALUES ('\xe4914d95c4e00721e8a8914f472ad460', '\x3eccfac8ad5ffba0c843260e67b3e926829c2922ff2c5527e745a97275c6d5cc29d0aace57e795ec', 'alice@example.com', 0, 1796623834, 1797228634, NULL, NULL, 2, 1797228634);
INSERT INTO public.ekg_keys VALUES ('\x3f109da99a716e14dfa94e490d2cba65', '\x0181811a86d8c3151388777a9c97b60aa2d0eec7dbddfba3d996c255d1cb077bcf1868362a81e96f', 'alice@example.com', 0, 1796623834, 1797228634, NULL, NULL, 1, 1797228634);
INSERT INTO public.ekg_recipients VALUES ('\xe4914d95c4e00721e8a8914f472ad460', 1, 'carol@example.com', NULL, NULL, 0);
INSERT INTO public.ekg_recipients VALUES ('\xe4914d95c4e00721e8a8914f472ad460', 2, 'dave@example.org', NULL, NULL, 0);
INSERT INTO public.ekg_recipients VALUES ('\xe4914d95c4e00721e8a8914f472ad460', 0, 'bob@example.org', '\x48beb518ca5677ae2f9bffc5106a8946720607b545825463d8e31704d67326ad', 1796623834, 1);
INSERT INTO public.ekg_recipients VALUES ('\x3f109da99a716e14dfa94e490d2cba65', 0, 'bob@example.org', NULL, NULL, 0);
INSERT INTO public.ekg_requests VALUES ('alice@example.com', '\x0eb2ddfe451790bc9258e38144585ae3', 1796623833, '\x992878c1b61699c987ffca138a3830ca');
INSERT INTO public.ekg_requests VALUES ('alice@example.com', '\xab76ed085b02d067e4f3f5e5040e55ee', 1796623834, '\xe4914d95c4e00721e8a8914f472ad460');
INSERT INTO public.ekg_requests VALUES ('alice@example.com', '\xf9d8e86298abc8dcd38d85d29c0aaf54', 1796623834, '\x3f109da99a716e14dfa94e490d2cba65');
INSERT INTO public.ekg_schema VALUES (1);
INSERT INTO public.ekg_schema VALUES (2);
ALTER TABLE ONLY public.ekg_keys
    ADD CONSTRAINT ekg_keys_pkey PRIMARY KEY (key_id);
ALTER TABLE ONLY public.ekg_recipients
    ADD CONSTRAINT ekg_recipients_pkey PRIMARY KEY (key_id, address);
ALTER TABLE ONLY public.ekg_requests
    ADD CONSTRAINT ekg_requests_pkey PRIMARY KEY (sender, nonce);
CREATE INDEX ekg_keys_deadline ON public.ekg_keys USING btree (deadline);
CREATE INDEX ekg_requests_key ON public.ekg_requests USING btree (key_id);
ALTER TABLE ONLY public.ekg_recipients
    ADD CONSTRAINT ekg_recipients_key_id_fkey FOREIGN KEY (key_id) REFERENCES public.ekg_keys(key_id) ON DELETE CASCADE;
